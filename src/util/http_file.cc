// HTTP range reads behind RandomAccessFile (util/http_file.h, docs/REMOTE.md).
#include "util/http_file.h"

#include "util/curl_dl.h"  // libcurl, loaded on first use
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "util/error.h"

namespace ckpt::http {
namespace {

constexpr size_t kKiB = 1024;
constexpr size_t kMiB = 1024 * kKiB;
constexpr uint64_t kBlock = 4 * kKiB;           // fetches start and end on block boundaries
constexpr size_t kHeadProbe = 64 * kKiB;         // the first request: local header and data.pkl
constexpr uint64_t kTailWindow = 64 * kKiB;      // a miss here fetches the whole tail (end records)
constexpr size_t kReadAhead = 64 * kKiB;         // small reads fetch at least this much ...
constexpr size_t kMaxReadAhead = 8 * kMiB;       // ... doubling while sequential, up to this
constexpr size_t kDirectRead = 1 * kMiB;         // larger gaps go straight to the caller's buffer
constexpr size_t kCacheCap = 64 * kMiB;          // memory held by one file's block cache
constexpr size_t kMaxHeaderBytes = 64 * kKiB;    // all header lines of one response
constexpr size_t kErrorBodyCap = 4 * kKiB;       // kept of an error response's body
constexpr int kMaxRedirects = 10;

std::atomic<uint64_t> g_requests{0}, g_bytes{0};
// The on-disk cache's size as this process last saw it (UINT64_MAX: not yet looked).
std::mutex g_cache_mu;
uint64_t g_cache_bytes = UINT64_MAX;

// The commit each hf:// name opened in this process was pinned to (remote_sibling).
std::mutex g_pinned_mu;
std::map<std::string, std::string>& pinned_commits() {
  static std::map<std::string, std::string> m;
  return m;
}

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return end && *end == '\0' && x >= 0 ? x : fallback;
}

std::string env_str(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

// Printable for one error line: control characters and overlong values cut.
std::string printable(const std::string& s, size_t cap = 200) {
  std::string out;
  for (char c : s) {
    if (out.size() >= cap) return out + "...";
    unsigned char u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  return out;
}

// A URL with its query string cut: presigned URLs carry signatures.
std::string shown_url(const std::string& url) {
  return printable(url.substr(0, url.find('?')), 300);
}

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// One connection cache (and DNS, TLS sessions) for the process.
std::array<std::mutex, CURL_LOCK_DATA_LAST> g_share_locks;
CURLSH* share() {
  static CURLSH* sh = [] {
    global_init();
    CURLSH* s = curl_share_init();
    curl_share_setopt(s, CURLSHOPT_LOCKFUNC, +[](CURL*, curl_lock_data d, curl_lock_access, void*) {
      g_share_locks[static_cast<size_t>(d) % g_share_locks.size()].lock();
    });
    curl_share_setopt(s, CURLSHOPT_UNLOCKFUNC, +[](CURL*, curl_lock_data d, void*) {
      g_share_locks[static_cast<size_t>(d) % g_share_locks.size()].unlock();
    });
    curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    return s;
  }();
  return sh;
}

std::string endpoint() {
  std::string e = env_str("HF_ENDPOINT");
  if (e.empty()) e = "https://huggingface.co";
  while (!e.empty() && e.back() == '/') e.pop_back();
  return e;
}

std::string token() {
  if (!settings().token.empty()) return settings().token;
  for (const char* name : {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"}) {
    std::string t = trim(env_str(name));
    if (!t.empty()) return t;
  }
  std::string path = env_str("HF_TOKEN_PATH");
  if (path.empty()) {
    std::string home = env_str("HF_HOME");
    if (home.empty()) {
      std::string xdg = env_str("XDG_CACHE_HOME");
      home = xdg.empty() ? env_str("HOME") + "/.cache/huggingface" : xdg + "/huggingface";
    }
    path = home + "/token";
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return {};
  char buf[4096];
  size_t n = std::fread(buf, 1, sizeof buf, f);
  std::fclose(f);
  return trim(std::string(buf, n));
}

struct Origin {
  std::string scheme, host, port;
  bool operator==(const Origin&) const = default;
};

// Parses url (or resolves a relative `ref` against it); nullopt-like empty
// scheme when malformed.
struct ParsedUrl {
  std::string url;
  Origin origin;
  bool ok = false;
};

ParsedUrl parse_url(const std::string& base, const std::string* ref = nullptr) {
  ParsedUrl p;
  CURLU* u = curl_url();
  if (!u) return p;
  unsigned flags = CURLU_NON_SUPPORT_SCHEME;
  bool ok = curl_url_set(u, CURLUPART_URL, base.c_str(), flags) == CURLUE_OK;
  if (ok && ref) ok = curl_url_set(u, CURLUPART_URL, ref->c_str(), flags) == CURLUE_OK;
  if (ok) {
    char *url = nullptr, *scheme = nullptr, *host = nullptr, *port = nullptr;
    ok = curl_url_get(u, CURLUPART_URL, &url, 0) == CURLUE_OK &&
         curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK;
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT);
    if (ok) {
      p.url = url;
      p.origin = {lower(scheme), host ? lower(host) : "", port ? port : ""};
      p.ok = true;
    }
    curl_free(url), curl_free(scheme), curl_free(host), curl_free(port);
  }
  curl_url_cleanup(u);
  return p;
}

std::string percent_encode(std::string_view s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

// A failure worth retrying (429, 5xx, time-outs, dropped connections).
struct Retryable {
  std::string message;
  long retry_after_s = -1;
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  size_t header_bytes = 0;
  std::string body;         // an error response's first bytes
  char* out = nullptr;      // where a 206's body goes
  size_t want = 0;
  size_t received = 0;
  std::string abort_reason; // why a callback stopped the transfer
  bool stopped_ok = false;  // stopped on purpose after enough of an error body

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* r = static_cast<Response*>(user);
  size_t n = size * count;
  r->header_bytes += n;
  if (r->header_bytes > kMaxHeaderBytes) {
    r->abort_reason = "its response headers exceed " + std::to_string(kMaxHeaderBytes / kKiB) + " KiB";
    return 0;
  }
  std::string line(data, n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after 1xx): fresh headers
    r->headers.clear();
    return n;
  }
  size_t colon = line.find(':');
  if (colon != std::string::npos) r->headers[lower(trim(line.substr(0, colon)))] = trim(line.substr(colon + 1));
  return n;
}

struct WriteCtx {
  Response* r;
  CURL* h;
};

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* w = static_cast<WriteCtx*>(user);
  Response* r = w->r;
  size_t n = size * count;
  long status = 0;
  curl_easy_getinfo(w->h, CURLINFO_RESPONSE_CODE, &status);
  if (status == 206) {
    if (n > r->want - r->received) {
      r->abort_reason = "it sent more bytes than the " + std::to_string(r->want) + " asked for";
      return 0;
    }
    std::memcpy(r->out + r->received, data, n);
    r->received += n;
    g_bytes += n;
    return n;
  }
  if (status == 200) {
    r->abort_reason = "no-range";
    return 0;
  }
  r->body.append(data, std::min(n, kErrorBodyCap - std::min(kErrorBodyCap, r->body.size())));
  if (r->body.size() >= kErrorBodyCap) {
    r->stopped_ok = true;
    return 0;
  }
  return n;
}

// "bytes a-b/total" (total may be "*").
bool parse_content_range(const std::string& v, uint64_t& a, uint64_t& b, uint64_t& total, bool& total_known) {
  unsigned long long x, y;
  char rest[32] = {0};
  if (std::sscanf(v.c_str(), "bytes %llu-%llu/%31s", &x, &y, rest) != 3) return false;
  a = x, b = y;
  if (std::strcmp(rest, "*") == 0) {
    total_known = false;
    return true;
  }
  char* end = nullptr;
  unsigned long long t = std::strtoull(rest, &end, 10);
  if (!end || *end || !std::isdigit(static_cast<unsigned char>(rest[0]))) return false;
  total = t, total_known = true;
  return true;
}

bool parse_u64(const std::string& s, uint64_t& out) {
  if (s.empty() || s.size() > 19) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  out = std::strtoull(s.c_str(), nullptr, 10);
  return true;
}

std::string status_text(long s) {
  switch (s) {
    case 400: return "400 Bad Request";
    case 401: return "401 Unauthorized";
    case 403: return "403 Forbidden";
    case 404: return "404 Not Found";
    case 410: return "410 Gone";
    case 416: return "416 Range Not Satisfiable";
    case 429: return "429 Too Many Requests";
    case 500: return "500 Internal Server Error";
    case 502: return "502 Bad Gateway";
    case 503: return "503 Service Unavailable";
    case 504: return "504 Gateway Timeout";
    default: return std::to_string(s);
  }
}

std::string cache_root() {
  if (settings().no_cache || env_long("CKPT_NO_CACHE", 0) != 0) return {};
  if (!settings().cache_dir.empty()) return settings().cache_dir;
  std::string d = env_str("CKPT_CACHE_DIR");
  if (!d.empty()) return d;
  std::string xdg = env_str("XDG_CACHE_HOME");
  if (!xdg.empty()) return xdg + "/ckpt/http";
  std::string home = env_str("HOME");
  return home.empty() ? std::string() : home + "/.cache/ckpt/http";
}

// The on-disk cache's size limit in bytes (0: none): Settings::cache_max,
// else CKPT_CACHE_MAX, else kDefaultCacheMax. A number of bytes with an
// optional K, M, G or T suffix (powers of 1024; "KB", "KiB" read the same).
constexpr uint64_t kDefaultCacheMax = uint64_t{2} << 30;

uint64_t parse_cache_size(const std::string& text, const char* what) {
  std::string t = trim(text);
  size_t i = 0;
  uint64_t n = 0;
  while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) {
    if (n > (uint64_t{1} << 50)) throw UsageError(std::string(what) + " '" + printable(text) + "' is too large");
    n = n * 10 + static_cast<uint64_t>(t[i++] - '0');
  }
  std::string unit = lower(trim(t.substr(i)));
  int shift = -1;
  if (unit.empty() || unit == "b") shift = 0;
  for (const auto& [u, sh] : {std::pair<const char*, int>{"k", 10}, {"m", 20}, {"g", 30}, {"t", 40}})
    if (unit == u || unit == std::string(u) + "b" || unit == std::string(u) + "ib") shift = sh;
  if (i == 0 || shift < 0)
    throw UsageError(std::string(what) + " '" + printable(text) +
                     "' is not a size (write bytes, or a number with K, M, G or T: 512M, 4G; 0 for no limit)");
  return n << shift;
}

uint64_t cache_max() {
  if (!settings().cache_max.empty()) return parse_cache_size(settings().cache_max, "--cache-max");
  std::string e = env_str("CKPT_CACHE_MAX");
  return e.empty() ? kDefaultCacheMax : parse_cache_size(e, "CKPT_CACHE_MAX");
}

// Keeps the cache under its limit, least recently used first: every range
// file under root (CACHE/<file>/<offset>-<length>) by modification time,
// which a read from the cache renews; the oldest are removed until the total
// is at most 7/8 of the limit, then folders left empty. Other processes may
// be using the cache: a removed range is only fetched again.
void sweep_cache(const std::string& root, uint64_t max) {
  namespace fs = std::filesystem;
  struct Entry {
    fs::file_time_type mtime;
    uint64_t size;
    fs::path path;
  };
  std::vector<Entry> entries;
  uint64_t total = 0;
  std::error_code ec;
  for (fs::directory_iterator d(root, ec), end; !ec && d != end; d.increment(ec)) {
    std::error_code ec2;
    if (!d->is_directory(ec2) || d->is_symlink(ec2)) continue;
    for (fs::directory_iterator f(d->path(), ec2); !ec2 && f != end; f.increment(ec2)) {
      std::error_code ec3;
      if (!f->is_regular_file(ec3)) continue;
      uint64_t size = f->file_size(ec3);
      auto mtime = f->last_write_time(ec3);
      if (ec3) continue;
      entries.push_back({mtime, size, f->path()});
      total += size;
    }
  }
  g_cache_bytes = total;
  if (total <= max) return;
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) { return a.mtime < b.mtime; });
  const uint64_t target = max - max / 8;
  std::set<fs::path> folders;
  for (const auto& e : entries) {
    if (total <= target) break;
    std::error_code ec3;
    if (fs::remove(e.path, ec3)) total -= e.size, folders.insert(e.path.parent_path());
  }
  for (const auto& f : folders) {
    std::error_code ec3;
    if (fs::is_empty(f, ec3) && !ec3) fs::remove(f, ec3);
  }
  g_cache_bytes = total;
}

std::string fnv_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

constexpr uint64_t kMaxCachedSegment = 64 * kMiB;

class HttpFile final : public RandomAccessFile {
 public:
  HttpFile(std::string display, std::string url) : display_(std::move(display)), url_(std::move(url)) {
    global_init();
    ParsedUrl e = parse_url(endpoint());
    hub_origin_ = e.origin;
    stall_s_ = env_long("CKPT_HTTP_TIMEOUT", 30);
    tries_ = std::max(1L, env_long("CKPT_HTTP_TRIES", 5));
    backoff_ms_ = env_long("CKPT_HTTP_BACKOFF_MS", 500);
    ca_bundle_ = env_str("CKPT_CA_BUNDLE");
    if (ca_bundle_.empty()) ca_bundle_ = env_str("CURL_CA_BUNDLE");
    if (ca_bundle_.empty()) ca_bundle_ = env_str("SSL_CERT_FILE");
    trace_ = env_long("CKPT_HTTP_TRACE", 0) != 0;
    h_ = curl_easy_init();
    if (!h_) throw IoError(display_ + ": cannot start libcurl", ENOMEM);
    try {
      open();
    } catch (...) {  // a constructor that throws runs no destructor: the handle is released here
      curl_easy_cleanup(h_);
      h_ = nullptr;
      throw;
    }
  }
  ~HttpFile() override {
    if (h_) curl_easy_cleanup(h_);
  }

  void read(uint64_t offset, size_t n, char* buf) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (offset > size_ || n > size_ - offset)
      throw FormatError(display_ + ": unexpected end of file at offset " + std::to_string(size_));
    uint64_t pos = offset, end = offset + n;
    while (pos < end) {
      auto next = segs_.upper_bound(pos);
      if (next != segs_.begin()) {
        auto cur = std::prev(next);
        uint64_t seg_end = cur->first + cur->second.size();
        if (pos < seg_end) {
          size_t c = static_cast<size_t>(std::min(end, seg_end) - pos);
          std::memcpy(buf + (pos - offset), cur->second.data() + (pos - cur->first), c);
          pos += c;
          continue;
        }
      }
      uint64_t prev_end = 0;
      if (next != segs_.begin()) {
        auto cur = std::prev(next);
        prev_end = cur->first + cur->second.size();
      }
      if (load_from_disk(pos)) continue;
      uint64_t gap_end = next == segs_.end() ? size_ : next->first;
      if (!disk_segs_.empty()) {  // stop the fetch where a cached range starts
        auto d = disk_segs_.upper_bound(pos);
        if (d != disk_segs_.end()) gap_end = std::min(gap_end, d->first);
      }
      uint64_t want_end = std::min(end, gap_end);
      if (want_end - pos >= kDirectRead) {  // a tensor's bytes: exactly, uncached
        fetch(pos, static_cast<size_t>(want_end - pos), buf + (pos - offset));
        save_to_disk(pos, buf + (pos - offset), static_cast<size_t>(want_end - pos));
        last_fetch_end_ = want_end;
        pos = want_end;
        continue;
      }
      uint64_t from = std::max(prev_end, pos / kBlock * kBlock);
      uint64_t to;
      if (size_ - pos <= kTailWindow) {  // end records and central directory
        from = std::max(prev_end, (size_ > kTailWindow ? size_ - kTailWindow : 0) / kBlock * kBlock);
        to = gap_end;
      } else {
        if (from == last_fetch_end_) {
          read_ahead_ = std::min(read_ahead_ * 2, kMaxReadAhead);
        } else {
          read_ahead_ = kReadAhead;
        }
        // A small read (a header, a pickle) fetches ahead; a larger one what it asks.
        uint64_t target = want_end - pos >= 4 * kBlock ? want_end : std::max<uint64_t>(want_end, pos + read_ahead_);
        to = std::min(gap_end, (target + kBlock - 1) / kBlock * kBlock);
        if (pos >= hint_begin_ && pos < hint_end_) to = std::max(want_end, std::min(to, hint_end_));
      }
      std::string seg(static_cast<size_t>(to - from), '\0');
      fetch(from, seg.size(), seg.data());
      save_to_disk(from, seg.data(), seg.size());
      last_fetch_end_ = to;
      insert(from, std::move(seg));
    }
  }

  uint64_t size() const override { return size_; }
  const std::string& path() const override { return display_; }
  void will_read(uint64_t offset, uint64_t n) override {
    std::lock_guard<std::mutex> lock(mu_);
    hint_begin_ = offset;
    hint_end_ = offset + n;
  }

 private:
  void insert(uint64_t at, std::string seg) {
    cached_ += seg.size();
    segs_.emplace(at, std::move(seg));
    order_.push_back(at);
    while (cached_ > kCacheCap && order_.size() > 1) {
      auto it = segs_.find(order_.front());
      order_.pop_front();
      if (it == segs_.end()) continue;
      cached_ -= it->second.size();
      segs_.erase(it);
    }
  }

  // The first request: the file's head, which also tells the size and ETag.
  void open() {
    if (!cache_root().empty()) cache_max_ = cache_max();  // a bad setting is said before any request
    std::string head(kHeadProbe, '\0');
    size_t got = fetch(0, head.size(), head.data(), /*probe=*/true);
    head.resize(got);
    if (!head.empty()) insert(0, std::move(head));
    last_fetch_end_ = got;
    open_disk_cache();
  }

  // The on-disk cache of fetched ranges: CACHE/<hash of URL, ETag, size>/<offset>-<length>,
  // each file written under a temporary name and renamed. Without an ETag nothing is kept.
  void open_disk_cache() {
    std::string root = cache_root();
    std::string tag = !linked_etag_.empty() ? linked_etag_ : etag_;
    if (root.empty() || tag.empty() || size_ == 0) return;
    cache_root_ = root;
    disk_dir_ = root + "/" + fnv_hex(url_ + "\n" + tag + "\n" + std::to_string(size_));
    std::error_code ec;
    for (std::filesystem::directory_iterator it(disk_dir_, ec), end; !ec && it != end; it.increment(ec)) {
      unsigned long long off = 0, len = 0;
      char tail = 0;
      std::string name = it->path().filename().string();
      if (std::sscanf(name.c_str(), "%llu-%llu%c", &off, &len, &tail) != 2) continue;
      if (len == 0 || len > kMaxCachedSegment || off > size_ || len > size_ - off) continue;
      disk_segs_[off] = len;
    }
  }

  // Loads the on-disk range holding pos, if any; true when it did.
  bool load_from_disk(uint64_t pos) {
    if (disk_segs_.empty()) return false;
    auto it = disk_segs_.upper_bound(pos);
    if (it == disk_segs_.begin()) return false;
    --it;
    uint64_t off = it->first, len = it->second;
    if (pos >= off + len) return false;
    disk_segs_.erase(it);
    std::string file = disk_dir_ + "/" + std::to_string(off) + "-" + std::to_string(len);
    std::FILE* f = std::fopen(file.c_str(), "rb");
    if (!f) return false;
    std::string seg(static_cast<size_t>(len), '\0');
    size_t got = std::fread(seg.data(), 1, seg.size(), f);
    bool more = std::fgetc(f) != EOF;
    std::fclose(f);
    if (got != seg.size() || more) return false;
    ::utimensat(AT_FDCWD, file.c_str(), nullptr, 0);  // recently used: evicted last (sweep_cache)
    // Keep only what no memory segment holds already.
    auto next = segs_.lower_bound(off);
    if (next != segs_.end() && next->first < off + len) return false;
    if (next != segs_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second.size() > off) return false;
    }
    insert(off, std::move(seg));
    return true;
  }

  void save_to_disk(uint64_t off, const char* data, size_t len) {
    if (disk_dir_.empty() || len == 0 || len > kMaxCachedSegment) return;
    if (cache_max_ && len > cache_max_) return;  // could never be kept
    std::error_code ec;
    std::filesystem::create_directories(disk_dir_, ec);
    if (ec) return;  // a cache is optional: an unwritable folder only costs requests
    std::string name = disk_dir_ + "/" + std::to_string(off) + "-" + std::to_string(len);
    std::string tmp = name + ".tmp" + std::to_string(::getpid());
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) return;
    bool ok = std::fwrite(data, 1, len, f) == len;
    ok = std::fclose(f) == 0 && ok;
    if (!ok || std::rename(tmp.c_str(), name.c_str()) != 0) {
      std::remove(tmp.c_str());
      return;
    }
    // The first save of the process measures the cache; later ones count on
    // that figure and measure again (evicting) when it passes the limit.
    std::lock_guard<std::mutex> lock(g_cache_mu);
    if (g_cache_bytes != UINT64_MAX) g_cache_bytes += len;
    if (cache_max_ && (g_cache_bytes == UINT64_MAX || g_cache_bytes > cache_max_)) sweep_cache(cache_root_, cache_max_);
  }

  // Fetches [offset, offset+n) with retries; returns the bytes received
  // (fewer than n only for the probe of a file shorter than it).
  size_t fetch(uint64_t offset, size_t n, char* out, bool probe = false) {
    auto started = std::chrono::steady_clock::now();
    for (long attempt = 1;; ++attempt) {
      try {
        return fetch_once(offset, n, out, probe);
      } catch (const Retryable& e) {
        auto spent = std::chrono::steady_clock::now() - started;
        if (attempt >= tries_ || spent > std::chrono::seconds(stall_s_ * 4))
          throw IoError(display_ + ": " + e.message + " (gave up after " + std::to_string(attempt) +
                            (attempt == 1 ? " try" : " tries") + "; try again later)",
                        EIO);
        long wait_ms = backoff_ms_ << std::min<long>(attempt - 1, 5);
        if (e.retry_after_s >= 0) wait_ms = std::max(wait_ms, std::min<long>(e.retry_after_s, 10) * 1000);
        if (trace_) std::fprintf(stderr, "ckpt: http: retrying in %ld ms: %s\n", wait_ms, e.message.c_str());
        std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      }
    }
  }

  [[noreturn]] void fail(const std::string& url, const std::string& what) const {
    std::string where = display_;
    if (shown_url(url) != display_) where += " (" + shown_url(url) + ")";
    throw IoError(where + ": " + what, EIO);
  }

  size_t fetch_once(uint64_t offset, size_t n, char* out, bool probe) {
    bool via_cdn = !direct_url_.empty();
    std::string url = via_cdn ? direct_url_ : url_;
    std::set<std::string> seen{url};
    for (int hops = 0;; ++hops) {
      if (hops > kMaxRedirects)
        fail(url, "more than " + std::to_string(kMaxRedirects) + " redirects (a redirect loop?)");
      ParsedUrl here = parse_url(url);
      if (!here.ok) fail(url, "not a valid URL");
      bool at_hub = here.origin == hub_origin_;
      Response r = get(url, offset, n, out, at_hub);
      if (!opened_ && hops == 0) {  // the first hop names revision, size and ETag
        first_hop_ = r.headers;
      }
      long s = r.status;
      if (s == 301 || s == 302 || s == 303 || s == 307 || s == 308) {
        std::string loc = r.header("location");
        if (loc.empty()) fail(url, "HTTP " + std::to_string(s) + " redirect without a Location");
        ParsedUrl next = parse_url(url, &loc);
        if (!next.ok) fail(url, "redirect to a malformed Location '" + printable(loc) + "'");
        if (next.origin.scheme != "http" && next.origin.scheme != "https")
          fail(url, "redirect to '" + printable(loc) + "' refused: only http and https redirects are followed");
        if (here.origin.scheme == "https" && next.origin.scheme == "http")
          fail(url, "redirect from https to plain http (" + shown_url(next.url) + ") refused");
        if (!seen.insert(next.url).second) fail(url, "redirect loop (" + shown_url(next.url) + " again)");
        if (at_hub && !opened_) pin_revision(r);
        std::string le = r.header("x-linked-etag");
        if (at_hub && opened_ && !linked_etag_.empty() && !le.empty() && le != linked_etag_)
          fail(url, "the file changed while being read (x-linked-etag " + printable(linked_etag_) + ", now " +
                        printable(le) + "); run the command again");
        url = next.url;
        continue;
      }
      if (via_cdn && (s == 400 || s == 403 || s == 410) && hops == 0) {
        // An expired presigned URL: ask the Hub (pinned revision) again.
        direct_url_.clear();
        via_cdn = false;
        url = url_;
        continue;
      }
      if (s == 206) {
        if (at_hub && !opened_) pin_revision(r);  // a small file the Hub serves itself
        return accept_206(url, r, offset, n, hops > 0, at_hub);
      }
      if (s == 416 && probe) {
        unsigned long long total = 1;
        std::string cr = r.header("content-range");
        if (std::sscanf(cr.c_str(), "bytes */%llu", &total) == 1 && total == 0) {  // an empty file
          size_ = 0;
          opened_ = true;
          return 0;
        }
      }
      if (!r.abort_reason.empty() && r.abort_reason == "no-range") s = 200;
      explain(url, r, s, at_hub, offset, n);
    }
  }

  void pin_revision(const Response& r) {
    std::string commit = r.header("x-repo-commit");
    size_t at = url_.find("/resolve/");
    if (commit.empty() || at == std::string::npos) return;
    bool hex = commit.size() == 40 && std::all_of(commit.begin(), commit.end(), [](char c) {
                 return std::isxdigit(static_cast<unsigned char>(c));
               });
    if (!hex) return;
    size_t rev = at + 9, rev_end = url_.find('/', rev);
    if (rev_end == std::string::npos) return;
    url_ = url_.substr(0, rev) + commit + url_.substr(rev_end);
    std::lock_guard<std::mutex> lock(g_pinned_mu);
    pinned_commits()[display_] = commit;
  }

  size_t accept_206(const std::string& url, const Response& r, uint64_t offset, size_t n, bool redirected,
                    bool at_hub) {
    uint64_t a = 0, b = 0, total = 0;
    bool total_known = false;
    std::string cr = r.header("content-range");
    if (!parse_content_range(cr, a, b, total, total_known) || !total_known)
      fail(url, "206 Partial Content with a malformed Content-Range '" + printable(cr) + "'");
    uint64_t expect_total = opened_ ? size_ : total;
    if (!opened_) {
      std::string linked = lower(first_hop_.count("x-linked-size") ? first_hop_["x-linked-size"] : "");
      uint64_t ls = 0;
      if (!linked.empty() && parse_u64(linked, ls) && ls != total)
        fail(url, "x-linked-size says " + linked + " bytes but Content-Range says " + std::to_string(total));
    }
    if (total != expect_total)
      fail(url, "the file changed while being read (it was " + std::to_string(expect_total) + " bytes, now " +
                    std::to_string(total) + ")");
    uint64_t want_last = std::min<uint64_t>(offset + n, total) - 1;
    if (offset >= total || a != offset || b != want_last)
      fail(url, "wrong Content-Range '" + printable(cr) + "' for bytes=" + std::to_string(offset) + "-" +
                    std::to_string(offset + n - 1));
    size_t expect = static_cast<size_t>(b - a + 1);
    if (r.received != expect)
      throw Retryable{shown_url(url) + ": response ended after " + std::to_string(r.received) + " of " +
                      std::to_string(expect) + " bytes"};
    std::string etag = r.header("etag");
    std::string linked_etag = first_hop_.count("x-linked-etag") ? first_hop_["x-linked-etag"] : "";
    if (!opened_) {
      size_ = total;
      etag_ = etag;
      linked_etag_ = linked_etag;
      opened_ = true;
    } else if (!etag.empty() && !etag_.empty() && etag != etag_) {
      fail(url, "the file changed while being read (ETag " + printable(etag_) + ", now " + printable(etag) +
                    "); run the command again");
    }
    if (redirected) direct_url_ = url;  // later ranges go straight to the CDN
    (void)at_hub;
    return expect;
  }

  [[noreturn]] void explain(const std::string& url, const Response& r, long s, bool at_hub, uint64_t offset,
                            size_t n) {
    std::string code = r.header("x-error-code");
    std::string st = "HTTP " + status_text(s);
    bool sent_token = at_hub && !token_.empty();
    if (s == 200)
      fail(url, "the server answered 200 with the whole file instead of 206 Partial Content: it does not "
                "support range requests, and ckpt will not download a whole file silently (download it and "
                "pass the local path)");
    if (s == 429 || s >= 500) {
      Retryable e{shown_url(url) + ": " + st};
      uint64_t ra = 0;
      if (parse_u64(r.header("retry-after"), ra)) e.retry_after_s = static_cast<long>(std::min<uint64_t>(ra, 3600));
      throw e;
    }
    if (s == 401) {
      if (code == "GatedRepo")
        fail(url, st + ": a gated repository: accept its conditions on the Hub and pass a token (HF_TOKEN, the "
                       "huggingface token file or --token)");
      if (sent_token) fail(url, st + ": the token was refused (check HF_TOKEN, the token file or --token)");
      fail(url, st + ": the repository is private or gated, or does not exist; pass a token with access "
                     "(HF_TOKEN, the huggingface token file or --token)");
    }
    if (s == 403) {
      if (code == "GatedRepo")
        fail(url, st + ": a gated repository this token has no access to yet: request access on the Hub");
      fail(url, st + (sent_token ? ": the token has no access to this file" : ": access refused (a token may be needed: HF_TOKEN or --token)"));
    }
    if (s == 404) {
      if (code == "RevisionNotFound") fail(url, st + ": no such revision in the repository");
      if (code == "RepoNotFound")
        fail(url, st + ": no such repository (or it is private: pass a token with HF_TOKEN or --token)");
      if (code == "EntryNotFound") fail(url, st + ": no such file in the repository at that revision");
      fail(url, st + ": no such file (check the URL, path and revision)");
    }
    if (s == 416)
      fail(url, st + ": the server refused bytes=" + std::to_string(offset) + "-" + std::to_string(offset + n - 1) +
                    (opened_ ? " of a " + std::to_string(size_) + "-byte file" : std::string()) +
                    " (the file may have changed; run the command again)");
    fail(url, "unexpected " + st + " to a range request");
  }

  Response get(const std::string& url, uint64_t offset, size_t n, char* out, bool at_hub) {
    Response r;
    r.out = out;
    r.want = n;
    WriteCtx w{&r, h_};
    curl_easy_reset(h_);
    curl_easy_setopt(h_, CURLOPT_SHARE, share());
    curl_easy_setopt(h_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h_, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(h_, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h_, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h_, CURLOPT_USERAGENT, "ckpt/0.1.0");
    curl_easy_setopt(h_, CURLOPT_CONNECTTIMEOUT, std::max(1L, std::min(stall_s_, 30L)));
    curl_easy_setopt(h_, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h_, CURLOPT_LOW_SPEED_TIME, std::max(1L, stall_s_));
    long total_s = stall_s_ * 2 + static_cast<long>(n / (256 * kKiB));
    curl_easy_setopt(h_, CURLOPT_TIMEOUT, std::max(2L, total_s));
    curl_easy_setopt(h_, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h_, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h_, CURLOPT_WRITEDATA, &w);
    if (!ca_bundle_.empty()) curl_easy_setopt(h_, CURLOPT_CAINFO, ca_bundle_.c_str());
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(h_, CURLOPT_ERRORBUFFER, errbuf);
    struct curl_slist* hdrs = nullptr;
    std::string range = "Range: bytes=" + std::to_string(offset) + "-" + std::to_string(offset + n - 1);
    hdrs = curl_slist_append(hdrs, range.c_str());
    hdrs = curl_slist_append(hdrs, "Accept-Encoding: identity");
    std::string auth;
    if (at_hub) {
      if (token_.empty() && !token_looked_up_) token_ = token(), token_looked_up_ = true;
      if (!token_.empty()) {
        auth = "Authorization: Bearer " + token_;
        hdrs = curl_slist_append(hdrs, auth.c_str());
      }
    }
    curl_easy_setopt(h_, CURLOPT_HTTPHEADER, hdrs);
    ++g_requests;
    CURLcode rc = curl_easy_perform(h_);
    curl_slist_free_all(hdrs);
    curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &r.status);
    if (trace_)
      std::fprintf(stderr, "ckpt: http: GET %s bytes=%llu-%llu -> %ld (%zu bytes)%s\n", shown_url(url).c_str(),
                   static_cast<unsigned long long>(offset), static_cast<unsigned long long>(offset + n - 1),
                   r.status, r.received, at_hub && !auth.empty() ? " with token" : "");
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && r.stopped_ok)) return r;
    if (!r.abort_reason.empty()) {
      if (r.abort_reason == "no-range") return r;  // explained as a 200
      fail(url, "refused the server's answer: " + r.abort_reason);
    }
    std::string detail = errbuf[0] ? printable(errbuf) : curl_easy_strerror(rc);
    switch (rc) {
      case CURLE_OPERATION_TIMEDOUT:
        throw Retryable{shown_url(url) + ": timed out (" + detail + ")"};
      case CURLE_COULDNT_CONNECT:
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
        throw Retryable{shown_url(url) + ": " + detail};
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_CONNECT_ERROR:
        fail(url, "TLS: " + detail + " (the server's certificate is checked against the system's CA store; "
                  "CKPT_CA_BUNDLE names another)");
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
        fail(url, detail + " (check the host name, network and proxy settings)");
      default:
        fail(url, detail);
    }
  }

  std::string display_, url_, direct_url_;
  Origin hub_origin_;
  CURL* h_ = nullptr;
  std::mutex mu_;
  long stall_s_, tries_, backoff_ms_;
  std::string ca_bundle_;
  bool trace_ = false;
  std::string token_;
  bool token_looked_up_ = false;
  bool opened_ = false;
  std::map<std::string, std::string> first_hop_;
  std::string etag_, linked_etag_;
  uint64_t size_ = 0;
  std::map<uint64_t, std::string> segs_;
  uint64_t hint_begin_ = 0, hint_end_ = 0;  // will_read(): read-ahead stops at hint_end_
  std::string disk_dir_;                 // empty: no on-disk cache
  std::string cache_root_;
  uint64_t cache_max_ = 0;               // 0: no limit
  std::map<uint64_t, uint64_t> disk_segs_;  // offset -> length on disk
  std::deque<uint64_t> order_;
  size_t cached_ = 0;
  uint64_t last_fetch_end_ = 0;
  size_t read_ahead_ = kReadAhead;
};

}  // namespace

Settings& settings() {
  static Settings s;
  return s;
}

bool is_remote(std::string_view p) {
  auto starts = [&](std::string_view pre) {
    if (p.size() < pre.size()) return false;
    for (size_t i = 0; i < pre.size(); ++i)
      if (std::tolower(static_cast<unsigned char>(p[i])) != pre[i]) return false;
    return true;
  };
  return starts("http://") || starts("https://") || starts("hf://");
}

std::string resolve_url(const std::string& path) {
  if (path.rfind("hf://", 0) != 0) return path;
  std::string rest = path.substr(5);
  std::string kind;  // "" models, "datasets/", "spaces/"
  for (const char* k : {"datasets/", "spaces/"})
    if (rest.rfind(k, 0) == 0) kind = k, rest = rest.substr(std::strlen(k));
  auto bad = [&](const std::string& why) {
    throw UsageError("'" + printable(path) + "': " + why +
                     " (write hf://ORG/REPO/PATH[@REVISION], or hf://datasets/ORG/REPO/PATH[@REVISION])");
  };
  size_t s1 = rest.find('/');
  if (s1 == std::string::npos || s1 == 0) bad("no ORG/REPO");
  size_t s2 = rest.find('/', s1 + 1);
  if (s2 == std::string::npos || s2 == s1 + 1) bad("no file path after ORG/REPO");
  std::string repo = rest.substr(0, s2), file = rest.substr(s2 + 1), rev;
  size_t at = repo.find('@');
  if (at != std::string::npos) {  // hf://ORG/REPO@REV/PATH, as huggingface_hub writes it
    rev = repo.substr(at + 1), repo = repo.substr(0, at);
  } else if ((at = file.rfind('@')) != std::string::npos) {
    rev = file.substr(at + 1), file = file.substr(0, at);
  }
  if (file.empty() || file.back() == '/') bad("no file path after ORG/REPO");
  if (at != std::string::npos && rev.empty()) bad("empty revision after '@'");
  if (rev.empty()) rev = "main";
  return endpoint() + "/" + kind + percent_encode(repo, true) + "/resolve/" + percent_encode(rev, false) + "/" +
         percent_encode(file, true);
}

namespace {

// hf://[datasets/|spaces/]ORG/REPO[@REV] (head), the path in the repository
// (file, maybe empty) and a trailing "@REV" (tail) when the revision was
// written after the path.
struct HfName {
  std::string head, file, tail;
};

HfName split_hf(const std::string& path) {
  HfName n;
  std::string rest = path.substr(5), kind;
  for (const char* k : {"datasets/", "spaces/"})
    if (rest.rfind(k, 0) == 0) kind = k, rest = rest.substr(std::strlen(k));
  size_t s1 = rest.find('/');
  size_t s2 = s1 == std::string::npos ? s1 : rest.find('/', s1 + 1);
  std::string repo = s2 == std::string::npos ? rest : rest.substr(0, s2);
  n.file = s2 == std::string::npos ? "" : rest.substr(s2 + 1);
  size_t at = n.file.rfind('@');
  if (repo.find('@') == std::string::npos && at != std::string::npos) n.tail = n.file.substr(at), n.file.resize(at);
  n.head = path.substr(0, 5) + kind + repo;
  return n;
}

bool is_hf(const std::string& path) { return path.rfind("hf://", 0) == 0; }

// An http(s) URL without its query and fragment; the offset where its path starts.
std::string bare_url(const std::string& url, size_t& path_start) {
  std::string u = url.substr(0, url.find_first_of("?#"));
  size_t scheme = u.find("://");
  path_start = u.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  if (path_start == std::string::npos) path_start = u.size();
  return u;
}

std::string after_last_slash(const std::string& s) {
  size_t k = s.rfind('/');
  return k == std::string::npos ? s : s.substr(k + 1);
}

}  // namespace

std::string remote_join(const std::string& dir, const std::string& name) {
  if (is_hf(dir)) {
    HfName n = split_hf(dir);
    std::string file = n.file.empty() ? name : n.file + (n.file.back() == '/' ? "" : "/") + name;
    return n.head + "/" + file + n.tail;
  }
  size_t p = 0;
  std::string u = bare_url(dir, p);
  return u + (!u.empty() && u.back() == '/' ? "" : "/") + name;
}

std::string remote_sibling(const std::string& path, const std::string& name) {
  if (is_hf(path)) {
    HfName n = split_hf(path);
    size_t k = n.file.rfind('/');
    std::string file = (k == std::string::npos ? std::string() : n.file.substr(0, k + 1)) + name;
    if (n.tail.empty() && n.head.find('@') == std::string::npos) {
      std::lock_guard<std::mutex> lock(g_pinned_mu);
      auto it = pinned_commits().find(path);
      if (it != pinned_commits().end()) n.tail = "@" + it->second;
    }
    return n.head + "/" + file + n.tail;
  }
  size_t p = 0;
  std::string u = bare_url(path, p);
  if (p == u.size()) return u + "/" + name;
  return u.substr(0, u.rfind('/') + 1) + name;
}

std::string remote_basename(const std::string& path) {
  if (is_hf(path)) return after_last_slash(split_hf(path).file);
  size_t p = 0;
  std::string u = bare_url(path, p);
  return p == u.size() ? std::string() : after_last_slash(u.substr(p));
}

std::string revision_first(const std::string& path) {
  if (!is_hf(path)) return path;
  HfName n = split_hf(path);
  if (n.tail.empty() || n.file.empty()) return path;
  return n.head + n.tail + "/" + n.file;
}

namespace {

// A handle on a shared HttpFile: opening the same name again in this process
// (content sniffing, then the reader; the shards of an index) reuses its
// probe, block cache and pinned revision instead of asking again.
class SharedHttpFile final : public RandomAccessFile {
 public:
  explicit SharedHttpFile(std::shared_ptr<RandomAccessFile> f) : f_(std::move(f)) {}
  void read(uint64_t offset, size_t n, char* buf) override { f_->read(offset, n, buf); }
  uint64_t size() const override { return f_->size(); }
  bool prefers_few_reads() const override { return true; }
  void will_read(uint64_t offset, uint64_t n) override { f_->will_read(offset, n); }
  const std::string& path() const override { return f_->path(); }

 private:
  std::shared_ptr<RandomAccessFile> f_;
};

constexpr size_t kOpenFilesKept = 4;

}  // namespace

std::unique_ptr<RandomAccessFile> open_remote(const std::string& path) {
  static std::mutex mu;
  static std::deque<std::pair<std::string, std::shared_ptr<RandomAccessFile>>> open_files;
  {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& [name, f] : open_files)
      if (name == path) return std::make_unique<SharedHttpFile>(f);
  }
  std::string url = resolve_url(path);
  auto f = std::make_shared<HttpFile>(path, url);
  std::lock_guard<std::mutex> lock(mu);
  open_files.emplace_back(path, f);
  if (open_files.size() > kOpenFilesKept) open_files.pop_front();
  return std::make_unique<SharedHttpFile>(f);
}

Counters counters() { return {g_requests.load(), g_bytes.load()}; }

}  // namespace ckpt::http
