// libcurl loaded on first use (dlopen of libcurl.so.4) instead of at process
// start. Linked, libcurl brings about 30 libraries (TLS, Kerberos, LDAP, ...)
// whose loading and relocation cost every ckpt process ~4 ms and ~15 million
// instructions (callgrind), most of `ckpt info`'s time, though only remote
// reads (util/http_file.cc) use it. Include this instead of <curl/curl.h>:
// the curl_* names used there become calls through the loaded table.
#pragma once
#if !CKPT_CURL_DLOPEN  // linked (-DCKPT_CURL_DLOPEN=OFF, the wheel): libcurl's own names
#include <curl/curl.h>
#else
#ifndef CURL_DISABLE_TYPECHECK
#define CURL_DISABLE_TYPECHECK 1
#endif
#include <curl/curl.h>

namespace ckpt::curl_dl {

struct Api {
  decltype(&::curl_global_init) global_init;
  decltype(&::curl_share_init) share_init;
  decltype(&::curl_share_setopt) share_setopt;
  decltype(&::curl_url) url;
  decltype(&::curl_url_set) url_set;
  decltype(&::curl_url_get) url_get;
  decltype(&::curl_url_cleanup) url_cleanup;
  decltype(&::curl_free) free;
  decltype(&::curl_easy_init) easy_init;
  decltype(&::curl_easy_cleanup) easy_cleanup;
  decltype(&::curl_easy_reset) easy_reset;
  decltype(&::curl_easy_setopt) easy_setopt;
  decltype(&::curl_easy_getinfo) easy_getinfo;
  decltype(&::curl_easy_perform) easy_perform;
  decltype(&::curl_easy_strerror) easy_strerror;
  decltype(&::curl_slist_append) slist_append;
  decltype(&::curl_slist_free_all) slist_free_all;
};

// The table, loaded once (thread-safe); throws IoError saying what to
// install when libcurl.so.4 or one of its functions cannot be loaded.
const Api& api();

}  // namespace ckpt::curl_dl

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_share_setopt
#define curl_global_init ::ckpt::curl_dl::api().global_init
#define curl_share_init ::ckpt::curl_dl::api().share_init
#define curl_share_setopt ::ckpt::curl_dl::api().share_setopt
#define curl_url ::ckpt::curl_dl::api().url
#define curl_url_set ::ckpt::curl_dl::api().url_set
#define curl_url_get ::ckpt::curl_dl::api().url_get
#define curl_url_cleanup ::ckpt::curl_dl::api().url_cleanup
#define curl_free ::ckpt::curl_dl::api().free
#define curl_easy_init ::ckpt::curl_dl::api().easy_init
#define curl_easy_cleanup ::ckpt::curl_dl::api().easy_cleanup
#define curl_easy_reset ::ckpt::curl_dl::api().easy_reset
#define curl_easy_setopt ::ckpt::curl_dl::api().easy_setopt
#define curl_easy_getinfo ::ckpt::curl_dl::api().easy_getinfo
#define curl_easy_perform ::ckpt::curl_dl::api().easy_perform
#define curl_easy_strerror ::ckpt::curl_dl::api().easy_strerror
#define curl_slist_append ::ckpt::curl_dl::api().slist_append
#define curl_slist_free_all ::ckpt::curl_dl::api().slist_free_all
#endif  // CKPT_CURL_DLOPEN
