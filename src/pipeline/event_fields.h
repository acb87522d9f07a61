/* event_fields: the stored event's fields, one line each, for the row, the store, JSON and CSV. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_EVENT_FIELDS_H
#define SP_EVENT_FIELDS_H

/*
 * Each line is one field of a stored event (an X-macro, as redis lists its commands and h2o
 * its header tokens):
 *
 *   X(member, name, kind, csv, from)
 *
 *   member  its member in sp_event_row_t
 *   name    its column in both stores' events table, its key in the JSON, its CSV header
 *   kind    its type everywhere (below): SQL type, how it is bound and read, JSON and CSV form
 *   csv     its column in the CSV export, from 1; 0: not in the CSV
 *   from    how the writer gets it from an event EV (sp_event_row)
 *
 * The JSON shows the fields in this order. What they make: sp_event_row_t (event.h), the store's
 * INSERT, SELECT and row reads (store_sqlite.c, store_pg.c), the JSON and the CSV with its
 * header (serialize.c). A new field is one line here, plus its migration in each store (the
 * store tests check that every field has its column, of its kind's type).
 *
 *   kind          C (in the row)   SQLite   PostgreSQL        JSON               CSV
 *   ID            int64_t          INTEGER  bigint            number             digits
 *   TIME          int64_t (ms)     INTEGER  bigint            ISO 8601 or null   ISO 8601
 *   KIND          int64_t          INTEGER  integer           "open", "click"    the same
 *   CLASS         int64_t          INTEGER  integer           its class's name   the same
 *   TEXT          const char *     TEXT     text              string             the text
 *   TEXT_OR_NULL  const char *     TEXT     text, nullable    string or null     the text or ""
 *   OBJECT        const char *     TEXT     text              the JSON object    the JSON text
 *   COORD         double (NAN)     REAL     double precision  number or null     %.4f or ""
 *   DURATION      int64_t (-1)     INTEGER  bigint, nullable  number or null     digits or ""
 *
 * ID is assigned by the store. Text is well-formed UTF-8 in a row (sp_event_row); a NULL
 * TEXT_OR_NULL, a NAN COORD and a negative DURATION are SQL NULLs, and only those kinds may be. An
 * OBJECT's FROM makes a malloc'd string, which the row owns.
 */
#define SP_EVENT_FIELDS(X)                                                                         \
    X(id, "id", ID, 1, ev->id)                                                                     \
    X(ts_ms, "ts", TIME, 2, ev->ts_ms)                                                             \
    X(kind, "kind", KIND, 3, ev->kind)                                                             \
    X(campaign, "campaign", TEXT, 4, ev->campaign)                                                 \
    X(recipient, "recipient", TEXT, 5, ev->recipient)                                              \
    X(ip, "ip", TEXT, 9, ev->ip)                                                                   \
    X(user_agent, "user_agent", TEXT_OR_NULL, 21, ev->user_agent)                                  \
    X(browser, "browser", TEXT, 15, ev->browser)                                                   \
    X(browser_version, "browser_version", TEXT, 16, ev->browser_version)                           \
    X(os, "os", TEXT, 17, ev->os)                                                                  \
    X(os_version, "os_version", TEXT, 18, ev->os_version)                                          \
    X(device, "device", TEXT, 19, ev->device)                                                      \
    X(device_brand, "device_brand", TEXT, 0, ev->device_brand)                                     \
    X(device_model, "device_model", TEXT, 0, ev->device_model)                                     \
    X(arch, "arch", TEXT, 20, ev->arch)                                                            \
    X(country, "country", TEXT, 10, ev->country)                                                   \
    X(region, "region", TEXT, 11, ev->region)                                                      \
    X(city, "city", TEXT, 12, ev->city)                                                            \
    X(latitude, "latitude", COORD, 13, ev->has_coords ? ev->latitude : NAN)                        \
    X(longitude, "longitude", COORD, 14, ev->has_coords ? ev->longitude : NAN)                     \
    X(geo_label, "geo_label", TEXT, 0, ev->geo_label)                                              \
    X(via, "via", TEXT, 8, ev->via)                                                                \
    X(klass, "class", CLASS, 6, ev->klass)                                                         \
    X(rule, "rule", TEXT, 7, ev->rule)                                                             \
    X(cookies_json, "cookies", OBJECT, 24, sp_event_cookies_json(ev))                              \
    X(headers_json, "headers", OBJECT, 25, sp_event_headers_json(ev))                              \
    X(referer, "referer", TEXT_OR_NULL, 22, ev->referer)                                           \
    X(target, "target", TEXT, 23, ev->target)                                                      \
    X(visitor, "visitor", TEXT, 0, ev->visitor)                                                    \
    X(engagement, "engagement", TEXT_OR_NULL, 26, ev->engagement[0] ? ev->engagement : NULL)       \
    X(read_ms, "read_ms", DURATION, 27, ev->read_ms)

#endif
