// scan (api/scan.h): lists the globals a file's pickles name and checks them against
// AudioCraft's allowlist, without unpickling anything. Exit 0: every global
// allowed and every pickle read whole; 1: something not allowed; 2: the file
// could not be read whole (never reported safe).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "cli/commands.h"
#include "api/scan.h"
#include "util/error.h"

namespace ckpt::cli {

namespace {

std::string uses_text(const api::ScannedGlobalEntry& g) {
  std::string s;
  auto add = [&](bool on, const char* word) {
    if (on) s += (s.empty() ? "" : ", ") + std::string(word);
  };
  add(g.called, "called");
  add(g.instantiated, "instantiated");
  add(g.built, "built");
  add(g.persistent_id, "in a persistent id");
  return s.empty() ? "referenced" : s;
}

int cmd_scan(Env& env, const std::string& file, bool as_json) {
  api::ScanResult scan = api::scan(env, file);
  size_t refused = 0;
  for (const auto& g : scan.globals) refused += g.allowed ? 0 : 1;

  if (as_json) {
    print_json(scan);
  } else {
    for (const auto& g : scan.globals)
      std::printf("%s %s.%s (%s) in record %s at pickle offset %llu (file offset %llu)\n",
                  g.allowed ? "ALLOWED" : "NOT ALLOWED", g.module.c_str(), g.name.c_str(), uses_text(g).c_str(),
                  g.record.c_str(), static_cast<unsigned long long>(g.pickle_offset),
                  static_cast<unsigned long long>(g.file_offset));
    size_t complete = 0;
    for (const auto& p : scan.pickles) {
      complete += p.complete ? 1 : 0;
      if (p.trailing_bytes)
        std::printf("note: %llu bytes after the STOP of %s not scanned (no loader reads them)\n",
                    static_cast<unsigned long long>(p.trailing_bytes), p.name.c_str());
    }
    if (scan.container == "safetensors")
      std::printf("%s: %s (safetensors: no pickle, nothing to unpickle; header checked)\n", file.c_str(),
                  scan.verdict.c_str());
    else
      std::printf("%s: %s (%s, %zu pickle%s read, %zu global%s, %zu not allowed)\n", file.c_str(),
                  scan.verdict.c_str(), scan.container.c_str(), complete, complete == 1 ? "" : "s",
                  scan.globals.size(), scan.globals.size() == 1 ? "" : "s", refused);
  }
  std::cout.flush();
  if (scan.problem) {
    // Globals found before the damage are listed above; the file is not safe.
    std::fprintf(stderr, "ckpt: error: %s (cannot be read whole: not safe)\n", scan.problem->c_str());
    return 2;
  }
  return scan.verdict == "safe" ? 0 : 1;
}

}  // namespace

void register_scan_commands(CLI::App& app, Context& ctx) {
  struct Args {
    std::string file;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* scan = app.add_subcommand(
      "scan", "list the globals a checkpoint's or pickle's pickles name; exit 0 safe, 1 not allowed, 2 unreadable");
  scan->add_option("FILE", a->file, "torch zip, legacy (any pickle protocol) or tar-form checkpoint, or a bare pickle")->required();
  scan->add_flag("--json", a->json, "machine-readable JSON output");
  scan->callback([a, &ctx] { ctx.exit_code = cmd_scan(ctx.env, a->file, a->json); });
}

}  // namespace ckpt::cli
