// Remote checkpoints: a RandomAccessFile over HTTP range requests (libcurl),
// so that every reader works unchanged on https://, http:// and
// hf://ORG/REPO/PATH[@REVISION] inputs (docs/REMOTE.md). Env::Default()
// opens such names through open_remote().
//
// What it does: one kept-alive connection per file (connections shared
// between the files of one process), an aligned block cache with read-ahead
// (the file's head and tail on open, growing read-ahead for sequential
// reads, memory bounded), the Hub's redirects (relative too) handled here so
// the token goes to the Hub host only, size and ETag from the first hop's
// x-linked-size / x-linked-etag, the revision pinned to X-Repo-Commit, every
// later response checked against the first ETag, bounded retries with
// backoff on 429, 5xx and time-outs, and one-line errors for everything a
// server (hostile ones included) can answer. An optional on-disk cache keeps
// fetched ranges keyed by URL and ETag.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "util/env.h"

namespace ckpt::http {

// Process-wide settings; the CLI's --token, --no-cache and --cache-dir and
// the Python package set them. Environment variables fill what is unset.
struct Settings {
  std::string token;      // empty: HF_TOKEN, then the huggingface token file
  bool no_cache = false;  // also CKPT_NO_CACHE=1
  std::string cache_dir;  // empty: CKPT_CACHE_DIR, else $XDG_CACHE_HOME/ckpt/http (~/.cache/...)
  // The cache's size limit: bytes, or with K/M/G/T (powers of 1024); "0" no
  // limit. Empty: CKPT_CACHE_MAX, else 2G. Least recently used ranges (file
  // modification time; reading a range renews it) are removed first.
  std::string cache_max;
};
Settings& settings();

// Whether path names a remote file (http://, https://, hf://).
bool is_remote(std::string_view path);

// hf://[datasets/|spaces/]ORG/REPO[@REV]/PATH[@REV] as the https URL of its
// /resolve/ endpoint on HF_ENDPOINT (default https://huggingface.co);
// http(s) URLs are returned as they are. Throws UsageError when malformed.
std::string resolve_url(const std::string& path);

// Names next to a remote name, as torch and huggingface_hub derive shard
// names (a folder cannot be listed over HTTP): `name` inside the folder
// `dir`, `name` beside the file `path`, and the last segment of a name's
// path. Query strings and fragments are dropped; an hf:// name keeps its
// revision, and a sibling of an hf:// file already opened in this process
// is pinned to the commit that open named (a shard set read at one commit).
std::string remote_join(const std::string& dir, const std::string& name);
std::string remote_sibling(const std::string& path, const std::string& name);
std::string remote_basename(const std::string& path);
// hf://ORG/REPO/PATH@REV spelled hf://ORG/REPO@REV/PATH (so that the name
// ends with the file's own suffix); other names as they are.
std::string revision_first(const std::string& path);

// Opens a remote file (one ranged GET of its head); throws IoError with one
// line naming the URL, the status and the fix.
std::unique_ptr<RandomAccessFile> open_remote(const std::string& path);

// Requests sent and body bytes received by this process (for tests and
// bench; CKPT_HTTP_TRACE=1 also logs each request on stderr).
struct Counters {
  uint64_t requests = 0;
  uint64_t bytes = 0;
};
Counters counters();

}  // namespace ckpt::http
