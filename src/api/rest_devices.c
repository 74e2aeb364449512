/*
 * rest_devices.c: the operator's REST face of OpenClaw device pairing
 * (issue #5; admin scope), used by `chela devices`:
 *   GET    /api/v1/devices               {pending:[...], paired:[...]} as device.pair.list
 *   POST   /api/v1/devices/:id/approve   :id is a request id or a device id (its pending request)
 *   POST   /api/v1/devices/:id/reject    the same; the request is dropped
 *   DELETE /api/v1/devices/:id           unpair a device; its connections close
 * The registry lives in memory (oc_pairing.c), so each answer is
 * immediate; the store is written behind it.
 */
#include <string.h>

#include "api/oc_internal.h"

static struct ch_oc *pairing_of(struct ch_http_req *r, void *data)
{
    struct ch_api *a = data;

    if (a->oc && a->oc->pairing && a->oc->pairing->loaded)
        return a->oc;
    ch_http_respond_error(r, 503, "unavailable", "paired devices are loading; retry shortly");
    return NULL;
}

static void answer(struct ch_http_req *r, int rc, json_t *out, const char *id, const char *what)
{
    if (rc == 0)
        ch_http_respond_json(r, 200, out);
    else if (rc == CH_ENOTFOUND)
        ch_http_respond_error(r, 404, "not_found", "no %s '%.140s'", what, id);
    else if (rc == CH_E_TOO_LARGE)
        ch_http_respond_error(r, 409, "too_many_devices", "at most %d devices can be paired; remove one first",
                              CH_STORE_MAX_DEVICES);
    else
        ch_http_respond_error(r, 500, "internal", "%s", ch_strerror(rc));
}

void ch_rest_devices_list(struct ch_http_req *r, void *data)
{
    struct ch_oc *oc = pairing_of(r, data);

    if (oc)
        ch_http_respond_json(r, 200, ch_oc_pairing_list_json(oc));
}

/* approve and reject: a request id, else the newest request of a device. */
static void resolve(struct ch_http_req *r, void *data, bool approve)
{
    struct ch_oc *oc = pairing_of(r, data);
    char id[CH_STORE_MAX_DEVICE_FIELD_BYTES + 1], rid[sizeof(id)];
    const char *by_device;
    json_t *out = NULL;
    int rc;

    if (!oc || ch_api_path_param(r, 0, id, sizeof(id)) != 0)
        return;
    by_device = ch_oc_pairing_find_request(oc->pairing, id) ? NULL : ch_oc_pairing_request_of(oc, id);
    snprintf(rid, sizeof(rid), "%s", by_device ? by_device : id);
    rc = approve ? ch_oc_pairing_approve(oc, rid, &out) : ch_oc_pairing_reject(oc, rid, &out);
    answer(r, rc, out, id, "pending pairing request for");
}

void ch_rest_devices_approve(struct ch_http_req *r, void *data)
{
    resolve(r, data, true);
}

void ch_rest_devices_reject(struct ch_http_req *r, void *data)
{
    resolve(r, data, false);
}

void ch_rest_devices_remove(struct ch_http_req *r, void *data)
{
    struct ch_oc *oc = pairing_of(r, data);
    char id[CH_STORE_MAX_DEVICE_FIELD_BYTES + 1];
    json_t *out = NULL;
    int rc;

    if (!oc || ch_api_path_param(r, 0, id, sizeof(id)) != 0)
        return;
    rc = ch_oc_pairing_remove(oc, id, &out);
    answer(r, rc, out, id, "paired device");
    if (rc == 0)
        ch_oc_pairing_disconnect(oc, id, NULL, "device pairing removed");
}
