/* scan_rules: the recipient-side scanner's tables: tracking hosts, hiding styles, parameters. */
/* SPDX-License-Identifier: MIT */
#include "scan_rules.h"

#include <fnmatch.h>
#include <string.h>
#include <strings.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- Tracking hosts: tried in order, the first match names the finding ----------------------- */

/* Most rules name a whole domain: every URL a mail carries to a tracking service's domain is
 * logged by it, whichever path it asks for. Path rules come first where a vendor's own URLs say
 * more (an open pixel rather than a click), and for services that run on the sender's own
 * domain, where only the path gives them away. */

#define OPEN_REASON(who)                                                                           \
    who "'s open tracking: the image is fetched from " who                                         \
        " when the message is opened, and the URL says which recipient opened which mail"
#define HOST_REASON(who, what)                                                                     \
    "a host of " who what ": every image it serves and every click through it is logged: "         \
    "which recipient, when, from which IP address and mail client"

static const sp_scan_host_rule_t host_rules[] = {
    /* spypixel's own URLs, on whatever host serves them. */
    {"spypixel-pixel", "spypixel", NULL, "/spy-pixel.gif", SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL,
     "spypixel's open pixel (/spy-pixel.gif?campaign=ID&email=ADDRESS): a 1x1 image that "
     "records who opened which campaign"},
    {"spypixel-open", "spypixel", NULL, "/o/*.gif",
     SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL | SP_SCAN_NEEDS_TOKEN,
     "spypixel's opaque open pixel (/o/TOKEN.gif): the sealed token names the campaign and the "
     "recipient"},
    {"spypixel-image", "spypixel", NULL, "/i/*", SP_SCAN_ON_IMAGE | SP_SCAN_NEEDS_TOKEN,
     "spypixel's tracked image (/i/TOKEN): an ordinary-looking logo or banner whose every load is "
     "recorded for the recipient the token names"},
    {"spypixel-click", "spypixel", NULL, "/c/*", SP_SCAN_ON_LINK | SP_SCAN_NEEDS_TOKEN,
     "spypixel's tracked link (/c/TOKEN): the click is recorded for the recipient the token "
     "names before the redirect to the real page"},

    /* Open and click paths that senders serve from their own domains. */
    {"sendgrid-open", "SendGrid", NULL, "/wf/open*", SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL,
     "SendGrid's open pixel (/wf/open?upn=...), also served from senders' branded domains: "
     "upn identifies the recipient"},
    {"sendgrid-click", "SendGrid", NULL, "/ls/click*", SP_SCAN_ON_LINK,
     "SendGrid's click tracking (/ls/click?upn=...), also on senders' branded domains: the "
     "click is logged for the recipient before the redirect"},
    {"mailchimp-open", "Mailchimp", "list-manage.com", "/track/open.php*",
     SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL, OPEN_REASON("Mailchimp")},
    {"mandrill-open", "Mandrill", "mandrillapp.com", "/track/open.php*",
     SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL, OPEN_REASON("Mandrill (Mailchimp Transactional)")},
    {"constant-contact-open", "Constant Contact", "rs6.net", "/on.jsp*",
     SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL, OPEN_REASON("Constant Contact")},
    {"mailgun", "Mailgun", "email.*", "/[oc]/*", SP_SCAN_ON_ANY | SP_SCAN_NEEDS_TOKEN,
     "Mailgun's open (/o/TOKEN) and click (/c/TOKEN) tracking on a sender's email.DOMAIN "
     "tracking host: the token identifies the message and recipient"},
    {"linkedin-open", "LinkedIn", "linkedin.com", "/emimp/*", SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL,
     OPEN_REASON("LinkedIn")},
    {"facebook-pixel", "Meta", "facebook.com", "/tr", SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL,
     "the Meta (Facebook) pixel endpoint: the load is reported to Meta's ad analytics"},
    {"hubspot-open", "HubSpot", NULL, "/e[0-9]t/o/*", SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL,
     "HubSpot's open tracking (/e1t/o/...), also served from senders' own domains: the path "
     "names the recipient, and HubSpot's print and forward CSS loads the same kind of URL"},
    {"hubspot-click", "HubSpot", NULL, "/e[0-9]t/c/*", SP_SCAN_ON_LINK,
     "HubSpot's click tracking (/e1t/c/...), also on senders' own domains: the click is logged "
     "for the recipient the path names before the redirect"},
    {"campaign-monitor", "Campaign Monitor", "*createsend*", "/t/*", SP_SCAN_ON_ANY,
     "Campaign Monitor's open and click tracking (createsend /t/...): the URL identifies the "
     "recipient"},
    {"campaign-monitor-cmail", "Campaign Monitor", "*cmail[0-9]*.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Campaign Monitor", "'s tracking (cmailNN.com)")},

    /* Shared images: one URL for everyone, so nothing in it names the reader, yet every load
     * reaches the host with the reader's IP address, mail client and time, and a browser adds
     * the host's own cookies (and a webmail page its address as Referer). */
    {"gmail-cleardot", "Google", "mail.google.com", "*/cleardot.gif",
     SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL,
     "Gmail's cleardot.gif, a 1x1 transparent spacer from Gmail's own pages that comes along "
     "when mail is written, pasted or forwarded in Gmail: the URL is the same for everyone, but "
     "every load reaches Google with your IP address, mail client and the time, and a browser "
     "signed in to Google sends Google's cookies with it, which name you"},
    {"google-cleardot", "Google", "google.com", "*/cleardot.gif",
     SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL,
     "Google's cleardot.gif, a 1x1 transparent image: the same for everyone, yet every load "
     "reaches Google with your IP address, mail client and the time, and a browser sends "
     "Google's cookies with it"},
    {"gstatic-cleardot", "Google", "gstatic.com", "*/cleardot.gif",
     SP_SCAN_ON_IMAGE | SP_SCAN_PIXEL_URL,
     "Gmail's cleardot.gif from Google's static host: no ID in the URL and no cookies there, "
     "but every load still tells Google your IP address, mail client and when you opened it"},

    /* Engagement analytics: besides the open, these time how long the message stays open (an
     * image served slowly, or fetched again and again while the message is shown) and record
     * prints and forwards with CSS that loads an image only then (print-css, forward-css). */
    {"litmus", "Litmus", "emltrk.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Litmus", " Email Analytics (emltrk.com), which also times how long the "
                           "message stays open and records prints and forwards")},
    {"email-on-acid", "Email on Acid", "eoapxl.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Email on Acid", "'s email analytics (eoapxl.com), which also times how long "
                                  "the message stays open and records prints and forwards")},
    {"contactmonkey", "ContactMonkey", "contactmonkey.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("ContactMonkey", "'s internal-email analytics, whose pixel is fetched again "
                                  "every few seconds while the message is open, to time the "
                                  "reading")},

    /* Live images, drawn by the service at the moment of opening (countdowns, personalised
     * pictures, often animated): every opening reaches it. */
    {"movable-ink", "Movable Ink", "*movable-ink-[0-9]*.com", NULL, SP_SCAN_ON_ANY,
     "Movable Ink's live images (movable-ink-NNNN.com): each image is drawn when the message is "
     "opened, from parameters that name the recipient (mi_u=...), so every opening is seen: "
     "when, from which IP address and mail client"},
    {"niftyimages", "NiftyImages", "niftyimages.com", NULL, SP_SCAN_ON_ANY,
     "NiftyImages' live images (countdowns, personalised pictures): drawn at the moment of "
     "opening, so every opening reaches NiftyImages (when, from which IP address and mail "
     "client), which keeps statistics per image for the sender"},
    {"sendtric", "Sendtric", "sendtric.com", NULL, SP_SCAN_ON_ANY,
     "Sendtric's countdown timers: an animated image drawn at the moment of opening, so every "
     "opening reaches Sendtric: when, from which IP address and mail client"},

    /* Whole tracking domains. */
    {"mailchimp", "Mailchimp", "list-manage.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Mailchimp", "'s open and click tracking (list-manage.com)")},
    {"mandrill", "Mandrill", "mandrillapp.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Mandrill", " (Mailchimp Transactional) tracking")},
    {"sendgrid", "SendGrid", "sendgrid.net", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("SendGrid", "'s open and click tracking (sendgrid.net, ct.sendgrid.net)")},
    {"hubspot", "HubSpot", "hubspotlinks.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("HubSpot", "'s click tracking (hubspotlinks.com)")},
    {"hubspot-email", "HubSpot", "hubspotemail.net", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("HubSpot", "'s email tracking (hubspotemail.net)")},
    {"hubspot-analytics", "HubSpot", "hs-analytics.net", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("HubSpot", "'s analytics (hs-analytics.net)")},
    {"hubspot-track", "HubSpot", "track.hubspot.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("HubSpot", "'s tracking (track.hubspot.com)")},
    {"hubspot-sales", "HubSpot", "*sidekickopen*", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("HubSpot Sales", " (formerly Sidekick) open and click tracking")},
    {"mailtrack", "Mailtrack", "mailtrack.io", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Mailtrack", ", a read-receipt add-on for Gmail")},
    {"yesware", "Yesware", "yesware.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Yesware", ", a sales-mail tracker")},
    {"streak", "Streak", "mailfoogae.appspot.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Streak", "'s read receipts (mailfoogae.appspot.com)")},
    {"streak-site", "Streak", "streak.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Streak", ", a CRM in Gmail with read receipts")},
    {"superhuman", "Superhuman", "superhuman.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Superhuman", "'s read statuses")},
    {"gmass", "GMass", "gmass.co", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("GMass", ", a mail-merge and campaign tracker for Gmail")},
    {"mixmax", "Mixmax", "mixmax.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Mixmax", "'s open and click tracking")},
    {"salesforce-mc", "Salesforce Marketing Cloud", "exct.net", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Salesforce Marketing Cloud", " (ExactTarget, exct.net)")},
    {"exacttarget", "Salesforce Marketing Cloud", "exacttarget.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Salesforce Marketing Cloud", " (ExactTarget)")},
    {"pardot", "Salesforce Pardot", "pardot.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Salesforce Pardot", "'s marketing automation")},
    {"mailgun-host", "Mailgun", "mailgun.net", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Mailgun", "'s tracking (mailgun.net)")},
    {"mailgun-org", "Mailgun", "mailgun.org", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Mailgun", "'s tracking (mailgun.org)")},
    {"amazon-ses", "Amazon SES", "awstrack.me", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Amazon SES", "'s open and click tracking (awstrack.me)")},
    {"constant-contact", "Constant Contact", "rs6.net", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Constant Contact", "'s tracking (rs6.net)")},
    {"mailjet", "Mailjet", "mjt.lu", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Mailjet", "'s open and click tracking (mjt.lu)")},
    {"sparkpost", "SparkPost", "spgo.io", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("SparkPost", "'s default tracking domain (spgo.io)")},
    {"sparkpost-mail", "SparkPost", "sparkpostmail.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("SparkPost", "'s tracking (sparkpostmail.com)")},
    {"postmark", "Postmark", "pstmrk.it", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Postmark", "'s click tracking (pstmrk.it)")},
    {"klaviyo", "Klaviyo", "*klclick*", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Klaviyo", "'s click tracking (klclick.com)")},
    {"klaviyo-mail", "Klaviyo", "klaviyomail.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Klaviyo", "'s open tracking (klaviyomail.com)")},
    {"eloqua", "Oracle Eloqua", "en25.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Oracle Eloqua", "'s tracking (en25.com)")},
    {"marketo", "Adobe Marketo", "mktoresp.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Adobe Marketo", "'s tracking (mktoresp.com)")},
    {"customer-io", "Customer.io", "customeriomail.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Customer.io", "'s tracking (customeriomail.com)")},
    {"customer-io-track", "Customer.io", "track.customer.io", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Customer.io", "'s tracking (track.customer.io)")},
    {"intercom", "Intercom", "via.intercom.io", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Intercom", "'s open and click tracking (via.intercom.io)")},
    {"intercom-mail", "Intercom", "intercom-mail.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Intercom", "'s mail tracking (intercom-mail.com)")},
    {"activecampaign", "ActiveCampaign", "*acemln?.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("ActiveCampaign", "'s tracking (acemlnX.com)")},
    {"activecampaign-hosted", "ActiveCampaign", "activehosted.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("ActiveCampaign", "'s hosted tracking (activehosted.com)")},
    {"brevo", "Brevo", "*sendib[tm][0-9].com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Brevo", " (Sendinblue)'s tracking (sendibtN.com, sendibmN.com)")},
    {"zoho-campaigns", "Zoho Campaigns", "maillist-manage.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Zoho Campaigns", "'s tracking (maillist-manage.com)")},
    {"mailerlite", "MailerLite", "mlsend.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("MailerLite", "'s tracking (mlsend.com)")},
    {"convertkit", "ConvertKit", "*convertkit-mail*", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("ConvertKit (Kit)", "'s open and click tracking")},
    {"boomerang", "Boomerang", "mailstat.us", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Boomerang", "'s read receipts (mailstat.us)")},
    {"bananatag", "Bananatag", "bl-1.com", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Bananatag", " (Staffbase Email)'s tracking (bl-1.com)")},
    {"polymail", "Polymail", "polymail.io", NULL, SP_SCAN_ON_ANY,
     HOST_REASON("Polymail", "'s read receipts")},
    {"google-analytics", "Google", "google-analytics.com", NULL, SP_SCAN_ON_ANY,
     "Google Analytics' collection endpoint: an image that reports the open to the sender's "
     "Analytics account"},
};

static bool has_glob(const char *pattern)
{
    return NULL != strpbrk(pattern, "*?[");
}

bool sp_scan_rules_host_is(const char *host, const char *domain)
{
    size_t h = strlen(host), d = strlen(domain);
    if (h < d || 0 != strcasecmp(host + h - d, domain))
        return false;
    return h == d || '.' == host[h - d - 1];
}

static bool host_matches(const char *pattern, const char *host)
{
    if (!pattern)
        return true;
    if (!host || !*host)
        return false;
    if (has_glob(pattern))
        return 0 == fnmatch(pattern, host, FNM_CASEFOLD);
    return sp_scan_rules_host_is(host, pattern);
}

static bool path_matches(const char *pattern, const char *path)
{
    if (!pattern)
        return true;
    return 0 == fnmatch(pattern, path && *path ? path : "/", 0);
}

const sp_scan_host_rule_t *sp_scan_rules_match_host(const char *host, const char *path, unsigned on,
                                                    bool last_is_token)
{
    for (size_t i = 0; i < N_OF(host_rules); i++) {
        const sp_scan_host_rule_t *r = &host_rules[i];
        if (!(r->flags & on) || ((r->flags & SP_SCAN_NEEDS_TOKEN) && !last_is_token))
            continue;
        if (host_matches(r->host, host) && path_matches(r->path, path))
            return r;
    }
    return NULL;
}

/* ---- Styles that hide an image --------------------------------------------------------------- */

/* A tracking pixel needs to be loaded, not seen: senders hide it so that no broken-image icon or
 * stray dot gives it away. Anything that hides an image while the client still fetches it is a
 * sign; sizes of 2px and less are treated as invisible, because a 1x1 or 2x2 image shows
 * nothing a reader could notice. */
static const sp_scan_style_rule_t style_rules[] = {
    {"display", SP_SCAN_STYLE_HIDES, SP_SCAN_STYLE_IS, "none", 0,
     "display:none: the image is fetched but never shown"},
    {"visibility", SP_SCAN_STYLE_HIDES, SP_SCAN_STYLE_IS, "hidden", 0,
     "visibility:hidden: the image is fetched but not drawn"},
    {"opacity", SP_SCAN_STYLE_HIDES, SP_SCAN_STYLE_AT_MOST, NULL, 0.01,
     "opacity:0: the image is fetched and drawn fully transparent"},
    {"mso-hide", SP_SCAN_STYLE_HIDES, SP_SCAN_STYLE_IS, "all", 0,
     "mso-hide:all: Outlook's own way to hide an element"},
    {"left", SP_SCAN_STYLE_HIDES, SP_SCAN_STYLE_AT_MOST, NULL, -500,
     "a large negative left offset puts the image off screen"},
    {"top", SP_SCAN_STYLE_HIDES, SP_SCAN_STYLE_AT_MOST, NULL, -500,
     "a large negative top offset puts the image off screen"},
    {"margin-left", SP_SCAN_STYLE_HIDES, SP_SCAN_STYLE_AT_MOST, NULL, -500,
     "a large negative margin puts the image off screen"},
    {"margin-top", SP_SCAN_STYLE_HIDES, SP_SCAN_STYLE_AT_MOST, NULL, -500,
     "a large negative margin puts the image off screen"},
    {"width", SP_SCAN_STYLE_SIZE, SP_SCAN_STYLE_AT_MOST, NULL, 2,
     "a width of 2px or less: nothing a reader could see"},
    {"height", SP_SCAN_STYLE_SIZE, SP_SCAN_STYLE_AT_MOST, NULL, 2,
     "a height of 2px or less: nothing a reader could see"},
    {"max-width", SP_SCAN_STYLE_SIZE, SP_SCAN_STYLE_AT_MOST, NULL, 2,
     "a max-width of 2px or less squeezes the image out of sight"},
    {"max-height", SP_SCAN_STYLE_SIZE, SP_SCAN_STYLE_AT_MOST, NULL, 2,
     "a max-height of 2px or less squeezes the image out of sight"},
};

const sp_scan_style_rule_t *sp_scan_rules_styles(size_t *n)
{
    *n = N_OF(style_rules);
    return style_rules;
}

/* ---- Per-recipient parameters on links ------------------------------------------------------- */

/* Analytics parameters that carry a recipient's identity to the landing page, so that the
 * visit is tied to the person even when the link itself is not redirected. Campaign-level
 * parameters (utm_*, mc_cid) say which mail was clicked, not who clicked it, and stay. */
static const sp_scan_param_rule_t param_rules[] = {
    {"mc_eid", "Mailchimp", "mc_eid is Mailchimp's ID of the subscriber's address"},
    {"_hsenc", "HubSpot", "_hsenc is HubSpot's encoded contact ID"},
    {"_hsmi", "HubSpot", "_hsmi ties the visit to one HubSpot email send"},
    {"mkt_tok", "Adobe Marketo", "mkt_tok is Marketo's per-recipient token"},
    {"_ke", "Klaviyo", "_ke is Klaviyo's encoded address of the recipient"},
    {"_kx", "Klaviyo", "_kx is Klaviyo's exchange ID of the recipient"},
    {"vero_id", "Vero", "vero_id is Vero's ID of the recipient"},
    {"oly_enc_id", "Omeda", "oly_enc_id is Omeda's encrypted customer ID"},
    {"ml_subscriber", "MailerLite", "ml_subscriber is MailerLite's subscriber ID"},
    {"ml_subscriber_hash", "MailerLite", "ml_subscriber_hash authenticates the subscriber ID"},
    {"ck_subscriber_id", "ConvertKit", "ck_subscriber_id is ConvertKit's subscriber ID"},
    {"__s", "Drip", "__s is Drip's subscriber ID"},
};

const sp_scan_param_rule_t *sp_scan_rules_params(size_t *n)
{
    *n = N_OF(param_rules);
    return param_rules;
}

const sp_scan_param_rule_t *sp_scan_rules_match_param(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OF(param_rules); i++)
        if (strlen(param_rules[i].name) == len && 0 == memcmp(param_rules[i].name, name, len))
            return &param_rules[i];
    return NULL;
}

/* ---- Share buttons --------------------------------------------------------------------------- */

/* A newsletter's "share" links put the newsletter's own URL in a parameter (u=, url=) like a
 * redirect does, but they lead to the social network, not through a tracker to that URL:
 * treating them as redirects would both report them and, with --strip, turn a share button
 * into a link to the newsletter. */
static const struct {
    const char *host; /* as in sp_scan_host_rule_t */
    const char *path; /* fnmatch glob, NULL for any */
    const char *what;
} share_rules[] = {
    {"facebook.com", "/sharer*", "Facebook share"},
    {"facebook.com", "/dialog/share*", "Facebook share"},
    {"twitter.com", "/intent/*", "X (Twitter) share"},
    {"twitter.com", "/share*", "X (Twitter) share"},
    {"x.com", "/intent/*", "X share"},
    {"linkedin.com", "/shareArticle*", "LinkedIn share"},
    {"linkedin.com", "/sharing/*", "LinkedIn share"},
    {"pinterest.com", "/pin/create/*", "Pinterest share"},
    {"reddit.com", "/submit*", "Reddit share"},
    {"api.whatsapp.com", "/send*", "WhatsApp share"},
    {"wa.me", NULL, "WhatsApp share"},
    {"t.me", "/share/*", "Telegram share"},
    {"bsky.app", "/intent/*", "Bluesky share"},
    {"getpocket.com", "/save*", "Pocket"},
};

bool sp_scan_rules_is_share(const char *host, const char *path)
{
    for (size_t i = 0; i < N_OF(share_rules); i++)
        if (host_matches(share_rules[i].host, host) && path_matches(share_rules[i].path, path))
            return true;
    return false;
}

/* ---- Forward-detection selectors ------------------------------------------------------------- */

/* Mail clients wrap the original in markup of their own when they quote or forward it, so a
 * style rule under one of these selectors applies only in that copy: a remote image there is
 * fetched when the forward or reply is opened, and tells the sender that the message travelled
 * (Litmus's, Email on Acid's and HubSpot's tracking codes all use them). */
static const sp_scan_forward_rule_t forward_rules[] = {
    {SP_SCAN_SEL_CLASS, "OutlookMessageHeader", NULL, false, "div.OutlookMessageHeader",
     "Outlook for Windows puts the original's headers in div.OutlookMessageHeader when it "
     "forwards or replies"},
    {SP_SCAN_SEL_ID, "divRplyFwdMsg", NULL, false, "#divRplyFwdMsg",
     "Outlook (Windows, the web, mobile) puts the original's headers in div#divRplyFwdMsg when "
     "it forwards or replies"},
    {SP_SCAN_SEL_ID, "appendonsend", NULL, false, "#appendonsend",
     "Outlook marks where the quoted original begins with div#appendonsend"},
    {SP_SCAN_SEL_ID, "OLK_SRC_BODY_SECTION", NULL, false, "#OLK_SRC_BODY_SECTION",
     "Outlook for Mac wraps the quoted or forwarded original in #OLK_SRC_BODY_SECTION"},
    {SP_SCAN_SEL_ID, "MailContainerBody", NULL, false, "#MailContainerBody",
     "Windows Live Mail's editor, which holds the original when it forwards or replies, is the "
     "element #MailContainerBody"},
    {SP_SCAN_SEL_CLASS, "moz-email-headers-table", NULL, false, "table.moz-email-headers-table",
     "Thunderbird puts the original's headers in table.moz-email-headers-table when it forwards "
     "inline"},
    {SP_SCAN_SEL_CLASS, "moz-forward-container", NULL, false, ".moz-forward-container",
     "Thunderbird wraps a message it forwards inline in div.moz-forward-container"},
    {SP_SCAN_SEL_CLASS, "moz-cite-prefix", NULL, false, ".moz-cite-prefix",
     "Thunderbird puts the \"On ... wrote:\" line of a reply in div.moz-cite-prefix"},
    {SP_SCAN_SEL_CLASS, "gmail_quote", NULL, false, ".gmail_quote",
     "Gmail wraps the quoted or forwarded original in div.gmail_quote"},
    {SP_SCAN_SEL_CLASS, "yahoo_quoted", NULL, false, ".yahoo_quoted",
     "Yahoo Mail wraps the quoted or forwarded original in div.yahoo_quoted"},
    {SP_SCAN_SEL_CLASS, "protonmail_quote", NULL, false, ".protonmail_quote",
     "Proton Mail wraps the quoted or forwarded original in .protonmail_quote"},
    {SP_SCAN_SEL_ATTR, "type", "cite", false, "[type=cite]",
     "Apple Mail and Thunderbird quote the original in blockquote type=\"cite\""},
    {SP_SCAN_SEL_TYPE, "blockquote", NULL, true, "blockquote",
     "most mail clients (Apple Mail, Thunderbird, Gmail, Yahoo Mail...) quote the original of a "
     "reply or forward in a blockquote, around the sender's own elements"},
};

const sp_scan_forward_rule_t *sp_scan_rules_forward(size_t *n)
{
    *n = N_OF(forward_rules);
    return forward_rules;
}

const sp_scan_forward_rule_t *sp_scan_rules_match_forward(sp_scan_sel_kind_t kind, const char *name,
                                                          const char *value)
{
    for (size_t i = 0; i < N_OF(forward_rules); i++) {
        const sp_scan_forward_rule_t *r = &forward_rules[i];
        if (r->kind != kind || 0 != strcasecmp(r->name, name))
            continue;
        if (SP_SCAN_SEL_ATTR == kind && (!value || 0 != strcasecmp(r->value, value)))
            continue;
        return r;
    }
    return NULL;
}

/* ---- Read-receipt headers -------------------------------------------------------------------- */

/* Not a hidden tracker but the same question asked openly: many clients ask before answering,
 * some answer on their own. */
static const sp_scan_header_rule_t header_rules[] = {
    {"Disposition-Notification-To",
     "asks the mail client for a read receipt (RFC 8098): answering tells the sender when the "
     "message was shown"},
    {"Return-Receipt-To", "asks for a receipt (an old, non-standard header some clients still "
                          "honour)"},
    {"X-Confirm-Reading-To", "asks for a read confirmation (an old Pegasus/Mercury header)"},
};

const sp_scan_header_rule_t *sp_scan_rules_headers(size_t *n)
{
    *n = N_OF(header_rules);
    return header_rules;
}
