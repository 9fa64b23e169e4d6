/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "version.h"
#include "disk/fetch.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

#define PROGRESS_STEP_BYTES (1024u * 1024u)
#define CONNECT_TIMEOUT_S 30L
/* A transfer slower than 1 byte/s for this long is given up (and resumed by the next run). */
#define STALL_TIMEOUT_S 60L
#define MAX_REDIRECTS 10L

bool pf_fetch_is_url(const char *s)
{
	return s && (strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0);
}

typedef struct Transfer {
	const PfFetchRequest *req;
	CURL *curl;
	int fd;
	PfFetchInfo info;
	/* Headers of the response being received (reset at each status line). */
	long status;
	char reason[64];
	uint64_t content_length; /* UINT64_MAX: none */
	bool have_range;
	uint64_t range_start, range_total; /* range_total UINT64_MAX: "*" */
	bool started;			   /* the body's first byte decided where it goes */
	uint64_t written;
	uint64_t next_report;
	int error; /* why a callback stopped the transfer */
} Transfer;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
	curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Copies a header's value, without surrounding blanks and the CRLF, into dst. */
static void header_value(const char *v, size_t n, char *dst, size_t dst_len)
{
	while (n > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		n--;
	}
	while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
		n--;
	if (n >= dst_len)
		n = dst_len - 1;
	memcpy(dst, v, n);
	dst[n] = 0;
}

/* The value of header name in line, or NULL. */
static const char *header_match(const char *line, size_t n, const char *name, size_t *ret_n)
{
	size_t l = strlen(name);

	if (n <= l || strncasecmp(line, name, l) != 0 || line[l] != ':')
		return NULL;
	*ret_n = n - l - 1;
	return line + l + 1;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata)
{
	Transfer *t = userdata;
	size_t n = size * nitems, vn;
	const char *v;
	char buf[128];

	if (n >= 5 && strncmp(line, "HTTP/", 5) == 0) {
		const char *sp = memchr(line, ' ', n);

		/* A new response (a redirect's, or an interim one): forget the last. */
		t->status = 0;
		t->reason[0] = 0;
		t->info.etag[0] = 0;
		t->info.last_modified[0] = 0;
		t->content_length = UINT64_MAX;
		t->have_range = false;
		if (sp) {
			size_t rest = n - (size_t)(sp + 1 - line);

			header_value(sp + 1, rest, buf, sizeof(buf));
			t->status = strtol(buf, NULL, 10);
			if (strlen(buf) > 4)
				snprintf(t->reason, sizeof(t->reason), "%.63s", buf + 4);
		}
		return n;
	}
	if ((v = header_match(line, n, "ETag", &vn)))
		header_value(v, vn, t->info.etag, sizeof(t->info.etag));
	else if ((v = header_match(line, n, "Last-Modified", &vn)))
		header_value(v, vn, t->info.last_modified, sizeof(t->info.last_modified));
	else if ((v = header_match(line, n, "Content-Length", &vn))) {
		uint64_t len;

		header_value(v, vn, buf, sizeof(buf));
		if (pf_parse_u64(buf, &len) >= 0)
			t->content_length = len;
	} else if ((v = header_match(line, n, "Content-Range", &vn))) {
		uint64_t start, end;
		char total[32];

		header_value(v, vn, buf, sizeof(buf));
		if (sscanf(buf, "bytes %" SCNu64 "-%" SCNu64 "/%31s", &start, &end, total) == 3 &&
		    end >= start) {
			t->have_range = true;
			t->range_start = start;
			if (pf_parse_u64(total, &t->range_total) < 0)
				t->range_total = UINT64_MAX;
		}
	}
	return n;
}

/* The final response's headers are in: decides where its body goes. */
static int start_body(Transfer *t)
{
	const PfFetchRequest *req = t->req;
	int r;

	t->started = true;
	t->info.status = t->status;
	if (t->status == 206) {
		if (!req->resume_from || !t->have_range)
			return pf_error_set(-EPROTO, "the server sent a partial answer (206) that "
						     "was not asked for");
		/* The range must continue the partial file exactly, or the bytes mix. */
		if (t->range_start != req->resume_from)
			return pf_error_set(-EPROTO,
					    "asked for the bytes from %" PRIu64
					    ", the server sent them from %" PRIu64,
					    req->resume_from, t->range_start);
		t->info.offset = req->resume_from;
		t->info.total_bytes = t->range_total;
	} else if (t->status == 200) {
		/* The whole file: the server ignored the range, or the file changed. */
		if (ftruncate(t->fd, 0) < 0)
			return pf_error_set(-errno, "cannot truncate the download: %m");
		t->info.offset = 0;
		t->info.total_bytes = t->content_length;
	} else
		return 0; /* an error status: reported after the transfer */
	if (t->info.total_bytes != UINT64_MAX && t->info.total_bytes > req->max_bytes)
		return pf_error_set(
			-EFBIG, "the file is %" PRIu64 " bytes, more than the %" PRIu64 " accepted",
			t->info.total_bytes, req->max_bytes);
	if (req->on_headers) {
		r = req->on_headers(&t->info, req->userdata);
		if (r < 0)
			return r;
	}
	t->next_report = t->info.offset + PROGRESS_STEP_BYTES;
	return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	Transfer *t = userdata;
	size_t n = size * nmemb;
	uint64_t at;
	int r;

	if (!t->started) {
		r = start_body(t);
		if (r < 0) {
			t->error = r;
			return 0;
		}
	}
	if (t->info.status != 200 && t->info.status != 206)
		return 0; /* the body of an error page: not kept */
	at = t->info.offset + t->written;
	if (at + n > t->req->max_bytes) {
		t->error =
			pf_error_set(-EFBIG, "the file is more than the %" PRIu64 " bytes accepted",
				     t->req->max_bytes);
		return 0;
	}
	r = pf_pwrite_all(t->fd, data, n, at);
	if (r < 0) {
		t->error = pf_error_set(r, "cannot write the download: %s", strerror(-r));
		return 0;
	}
	t->written += n;
	if (t->req->progress && at + n >= t->next_report) {
		t->req->progress(at + n, t->info.total_bytes, t->req->userdata);
		t->next_report = at + n + PROGRESS_STEP_BYTES;
	}
	return n;
}

static struct curl_slist *request_headers(const PfFetchRequest *req)
{
	struct curl_slist *h = NULL, *n;
	char line[512];

	if (req->resume_from && req->if_range) {
		snprintf(line, sizeof(line), "If-Range: %s", req->if_range);
		if (!(n = curl_slist_append(h, line)))
			goto oom;
		h = n;
	}
	if (!req->resume_from && req->if_none_match && *req->if_none_match) {
		snprintf(line, sizeof(line), "If-None-Match: %s", req->if_none_match);
		if (!(n = curl_slist_append(h, line)))
			goto oom;
		h = n;
	}
	if (!req->resume_from && req->if_modified_since && *req->if_modified_since) {
		snprintf(line, sizeof(line), "If-Modified-Since: %s", req->if_modified_since);
		if (!(n = curl_slist_append(h, line)))
			goto oom;
		h = n;
	}
	return h;
oom:
	curl_slist_free_all(h);
	return NULL;
}

/* The easy handle's options for req: URL, protocols, redirects, timeouts, callbacks into
 * t, the conditional headers and the range. errbuf and range must outlive the transfer. */
static void transfer_setup(Transfer *t, struct curl_slist *headers, char *errbuf, char range[48])
{
	const PfFetchRequest *req = t->req;

	curl_easy_setopt(t->curl, CURLOPT_URL, req->url);
	curl_easy_setopt(t->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(t->curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(t->curl, CURLOPT_MAXREDIRS, MAX_REDIRECTS);
	curl_easy_setopt(t->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->curl, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	curl_easy_setopt(t->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(t->curl, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
	curl_easy_setopt(t->curl, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
	/* The image is compressed already: no Accept-Encoding, the bytes as they are. */
	curl_easy_setopt(t->curl, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(t->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(t->curl, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(t->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(t->curl, CURLOPT_WRITEDATA, t);
	if (headers)
		curl_easy_setopt(t->curl, CURLOPT_HTTPHEADER, headers);
	if (req->resume_from) {
		snprintf(range, 48, "%" PRIu64 "-", req->resume_from);
		curl_easy_setopt(t->curl, CURLOPT_RANGE, range);
	}
}

/* A transfer that ended without a body: the headers were never followed by a write, so
 * the body is started here (an empty file). */
static int transfer_empty_body(Transfer *t)
{
	long code = 0;
	int r;

	curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
	if (code && !t->status)
		t->status = code;
	if (t->status == 200 || t->status == 206) {
		r = start_body(t);
		if (r < 0)
			return r;
	}
	t->info.status = t->status;
	return 0;
}

/* Judges the finished transfer: a callback's error, the HTTP status, curl's result, a 304
 * nobody asked for, a body shorter than announced. */
static int transfer_result(Transfer *t, CURLcode cc, const char *errbuf)
{
	const PfFetchRequest *req = t->req;

	if (t->error < 0)
		return t->error;
	if (t->status == 416 && req->resume_from)
		return pf_error_set(-ERANGE, "the server refused the range request (416)");
	if (t->status != 200 && t->status != 206 && t->status != 304 && t->status != 0)
		return pf_error_set(t->status == 404 || t->status == 410   ? -ENOENT
				    : t->status == 401 || t->status == 403 ? -EACCES
									   : -EIO,
				    "HTTP %ld%s%s", t->status, t->reason[0] ? " " : "", t->reason);
	if (cc != CURLE_OK)
		return pf_error_set(
			-EIO, "download stopped after %" PRIu64 " bytes: %s%s",
			t->info.offset + t->written, errbuf[0] ? errbuf : curl_easy_strerror(cc),
			req->resumable && t->info.offset + t->written ? " (run again to resume)"
								      : "");
	if (t->info.status == 304 && !(req->if_none_match || req->if_modified_since))
		return pf_error_set(-EPROTO, "the server answered 304 to a plain GET");
	t->info.size_bytes = t->info.status == 304 ? 0 : t->info.offset + t->written;
	if (t->info.total_bytes != UINT64_MAX && t->info.status != 304 &&
	    t->info.size_bytes != t->info.total_bytes)
		return pf_error_set(-EIO,
				    "download stopped after %" PRIu64 " of %" PRIu64 " bytes%s",
				    t->info.size_bytes, t->info.total_bytes,
				    req->resumable ? " (run again to resume)" : "");
	return 0;
}

int pf_fetch(const PfFetchRequest *req, int fd, PfFetchInfo *ret_info)
{
	char errbuf[CURL_ERROR_SIZE] = "", range[48];
	struct curl_slist *headers = NULL;
	Transfer t = {
		.req = req,
		.fd = fd,
		.content_length = UINT64_MAX,
		.info.total_bytes = UINT64_MAX,
	};
	CURLcode cc;
	int r;

	if (!pf_fetch_is_url(req->url))
		return pf_error_set(-EINVAL, "'%s' is not an http:// or https:// URL", req->url);
	pthread_once(&curl_once, curl_init);
	if (curl_init_result != CURLE_OK)
		return pf_error_set(-EIO, "cannot initialise libcurl: %s",
				    curl_easy_strerror(curl_init_result));
	t.curl = curl_easy_init();
	if (!t.curl)
		return -ENOMEM;
	if ((req->resume_from && req->if_range) || req->if_none_match || req->if_modified_since) {
		headers = request_headers(req);
		if (!headers) {
			curl_easy_cleanup(t.curl);
			return -ENOMEM;
		}
	}

	transfer_setup(&t, headers, errbuf, range);
	cc = curl_easy_perform(t.curl);
	r = 0;
	if (cc == CURLE_OK && !t.started)
		r = transfer_empty_body(&t);
	if (r >= 0)
		r = transfer_result(&t, cc, errbuf);
	if (r >= 0) {
		if (t.info.status != 304 && req->progress)
			req->progress(t.info.size_bytes, t.info.size_bytes, req->userdata);
		*ret_info = t.info;
	}
	curl_slist_free_all(headers);
	curl_easy_cleanup(t.curl);
	return r;
}
