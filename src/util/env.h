// The I/O seam, after LevelDB's Env: every file operation of ckpt goes
// through an Env so that tests can fail any read, write, fsync or rename
// (ENOSPC, EIO, EFBIG) and check that inputs stay intact and no partial
// output is left. Env::Default() is the POSIX implementation.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt {

class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads exactly n bytes at offset into buf; throws IoError / FormatError
  // (short file) when it cannot.
  virtual void read(uint64_t offset, size_t n, char* buf) = 0;
  virtual uint64_t size() const = 0;
  virtual const std::string& path() const = 0;
  // The OS descriptor, or -1; lets WritableFile::copy_from use copy_file_range.
  virtual int fd() const { return -1; }
  // True where each read costs a round trip (remote files, util/http_file.h):
  // readers then defer per-record checks to the records they read.
  virtual bool prefers_few_reads() const { return false; }
  // Says the next reads fall in [offset, offset + n) (one tensor's bytes), so
  // a remote file's read-ahead stops at its end. A hint only.
  virtual void will_read(uint64_t offset, uint64_t n) { (void)offset, (void)n; }
  std::string read_string(uint64_t offset, size_t n) {
    std::string s(n, '\0');
    if (n) read(offset, n, s.data());
    return s;
  }
};

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual void append(std::string_view data) = 0;
  // Appends n bytes of src starting at offset, without passing them through
  // user space where the kernel allows (copy_file_range, then sendfile, then
  // a bounded buffer).
  virtual void copy_from(RandomAccessFile& src, uint64_t offset, uint64_t n) = 0;
  // copy_from that also returns the CRC-32 of the n bytes, taken as they
  // pass so that they are read from memory once (a writer checking a record
  // against its directory CRC while copying it). Default: through a bounded
  // buffer (src.read, append); the POSIX file takes the CRC from a mapping of
  // the source and copies the same bytes in the kernel while they are cached.
  virtual uint32_t copy_from_with_crc(RandomAccessFile& src, uint64_t offset, uint64_t n);
  // A hint that at least n more bytes will be appended: the file may
  // allocate their disk space now, in one piece, before the disk is busy
  // (the POSIX file: fallocate, FALLOC_FL_KEEP_SIZE). On ext4 a file grown
  // by appends alone gets its blocks at writeback, where the allocator
  // reads block bitmaps queued behind the output's own writes while holding
  // the lock the next append waits for. Give a lower bound: space allocated
  // past what was written is given back at sync(). Default: nothing.
  virtual void reserve(uint64_t n) { (void)n; }
  // Bytes written so far (the offset the next append lands at).
  virtual uint64_t offset() const = 0;
  virtual void sync() = 0;
  virtual void close() = 0;
};

// A file opened for writing at chosen offsets without truncation: the seam
// for in-place updates (torch/in_place.h), which extend a file and overwrite
// a few bytes of it in a crash-safe order.
class RandomRWFile {
 public:
  virtual ~RandomRWFile() = default;
  // Writes all of data at offset (extending the file when past its end; a
  // gap reads as zeros).
  virtual void write_at(uint64_t offset, std::string_view data) = 0;
  virtual void sync() = 0;
  virtual void close() = 0;
  virtual const std::string& path() const = 0;
};

class Env {
 public:
  virtual ~Env() = default;
  static Env& Default();

  virtual std::unique_ptr<RandomAccessFile> open_read(const std::string& path) = 0;
  // Creates a new file; fails if it exists.
  virtual std::unique_ptr<WritableFile> create(const std::string& path) = 0;
  virtual void rename(const std::string& from, const std::string& to) = 0;
  virtual void remove(const std::string& path) = 0;  // no error if missing
  virtual bool exists(const std::string& path) = 0;
  virtual void sync_dir(const std::string& dir) = 0;
  // Opens an existing file for in-place updates. Not pure: Envs that do not
  // support it (test doubles) refuse with IoError.
  virtual std::unique_ptr<RandomRWFile> open_update(const std::string& path);
  // Whether path is a directory (following links). Not pure: false by default.
  virtual bool is_directory(const std::string& path);
  // Creates the directory path (its parent must exist); IoError if it cannot,
  // including when something already has that name. Not pure: Envs that do
  // not support it refuse with IoError.
  virtual void create_directory(const std::string& path);
  // Creates a new directory inside parent with a unique name starting with
  // prefix; returns its path. mode is filtered by the umask as mkdir(2)
  // does: 0700 (only this user) for scratch space, 0777 for a folder that
  // becomes an output, so that it ends up as mkdir(1), os.makedirs and
  // save_pretrained would make it.
  virtual std::string create_temp_directory(const std::string& parent, const std::string& prefix,
                                            unsigned mode = 0700);
  // Removes an empty directory; no error if missing.
  virtual void remove_directory(const std::string& path);
  // The file path names once symbolic links are followed (a link's target,
  // relative to the link's folder; a dangling link's target too): where an
  // output replacing path must go so that the link stays a link. Not pure:
  // path itself by default.
  virtual std::string resolve_links(const std::string& path);
  // Gives `to` the permission bits and, where allowed, the owner and group of
  // the existing file `from` (no-op when `from` does not exist). Not pure:
  // nothing by default.
  virtual void copy_mode(const std::string& from, const std::string& to);
  // True when `path` is an existing file protected from writing: no write
  // permission bit at all (chmod a-w, 0444: read-only even to root), or
  // none this process holds. Not pure: false by default.
  virtual bool read_only(const std::string& path);
  // The names in directory `dir` (not "." or ".."), sorted. Not pure: Envs
  // that do not support it refuse with IoError.
  virtual std::vector<std::string> list_directory(const std::string& dir);
  // Swaps the names a and b atomically (renameat2 RENAME_EXCHANGE; both must
  // exist). Not pure: IoError by default.
  virtual void exchange(const std::string& a, const std::string& b);
  // A new name `to` for the file `from` (a hard link; a symlink is linked as
  // itself). Not pure: IoError by default.
  virtual void link(const std::string& from, const std::string& to);
};

// The one policy of every command that replaces or updates an existing
// file (AtomicOutput with force, in-place edits, a folder's files replaced):
// throws UsageError naming `path` and the fix (chmod u+w) when
// env.read_only(path). A read-only file is the user's protection; a rename
// over it would go through it.
void refuse_read_only(Env& env, const std::string& path);

// An output written beside its final path under a temporary name and renamed
// into place by commit() once complete and fsync'd. If commit() is never
// reached the temporary file is removed, so a failed write leaves nothing.
class AtomicOutput {
 public:
  // Throws UsageError if final_path exists and !force, or with force when
  // it is read-only (refuse_read_only).
  AtomicOutput(Env& env, std::string final_path, bool force);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  WritableFile& file() { return *file_; }
  const std::string& temp_path() const { return temp_path_; }
  void commit();  // sync, close, rename over final_path, sync the directory

 private:
  Env& env_;
  std::string final_path_, temp_path_;
  std::unique_ptr<WritableFile> file_;
  bool committed_ = false;
  int signal_slot_ = -1;  // util/signal_cleanup.h
};

// POSIX writing shared by the Env's files and standard output:
// Writes all of data to descriptor fd (short writes and EINTR retried, at
// most 1 GiB a call); throws IoError naming `name`.
void write_all(int fd, std::string_view data, const std::string& name);
// Appends n bytes of src from offset to out through a bounded buffer (what
// copy_from does where the kernel cannot copy). With crc, continues *crc
// (a CRC-32) over the bytes copied.
void copy_through_buffer(RandomAccessFile& src, uint64_t offset, uint64_t n, WritableFile& out,
                         uint32_t* crc = nullptr);

std::string dirname_of(const std::string& path);
std::string basename_of(const std::string& path);
// `name` inside the folder `dir`, and `name` beside the file `file`, for
// local paths and remote names (util/http_file.h: a URL's query is dropped,
// an hf:// name keeps its revision) alike: how readers of file sets (DCP
// folders, safetensors indexes) name their other files, since a folder
// cannot be listed over HTTP.
std::string join_path(const std::string& dir, const std::string& name);
std::string sibling_path(const std::string& file, const std::string& name);
// The last segment of path's name (basename_of; a URL's without its query,
// an hf:// name's without its revision).
std::string last_name(const std::string& path);

}  // namespace ckpt
