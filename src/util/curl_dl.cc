// dlopen of libcurl for util/curl_dl.h. This file includes <curl/curl.h>
// only for the declarations the table's types come from; it calls nothing
// of libcurl's directly, so the binary does not link it.
#include "util/curl_dl.h"

#if CKPT_CURL_DLOPEN

#include <dlfcn.h>

#include <mutex>
#include <string>
#include <type_traits>

#include "util/error.h"

namespace ckpt::curl_dl {

const Api& api() {
  static Api table;
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = ::dlerror();
      failure = std::string("cannot load libcurl.so.4 (") + (why ? why : "dlopen failed") + ")";
      return;
    }
    auto load = [&](auto& slot, const char* name) {
      if (!failure.empty()) return;
      void* f = ::dlsym(lib, name);
      if (!f) failure = std::string("libcurl.so.4 lacks ") + name + " (libcurl 7.85 or newer is needed)";
      slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(f);
    };
    load(table.global_init, "curl_global_init");
    load(table.share_init, "curl_share_init");
    load(table.share_setopt, "curl_share_setopt");
    load(table.url, "curl_url");
    load(table.url_set, "curl_url_set");
    load(table.url_get, "curl_url_get");
    load(table.url_cleanup, "curl_url_cleanup");
    load(table.free, "curl_free");
    load(table.easy_init, "curl_easy_init");
    load(table.easy_cleanup, "curl_easy_cleanup");
    load(table.easy_reset, "curl_easy_reset");
    load(table.easy_setopt, "curl_easy_setopt");
    load(table.easy_getinfo, "curl_easy_getinfo");
    load(table.easy_perform, "curl_easy_perform");
    load(table.easy_strerror, "curl_easy_strerror");
    load(table.slist_append, "curl_slist_append");
    load(table.slist_free_all, "curl_slist_free_all");
  });
  if (!failure.empty())
    throw IoError("remote reads: " + failure + "; install libcurl4 (apt-get install libcurl4) or read a local copy", 0);
  return table;
}

}  // namespace ckpt::curl_dl

#endif  // CKPT_CURL_DLOPEN
