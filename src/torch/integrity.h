// What `verify` checks beyond CRCs and storage sizes: the ways a readable
// checkpoint is refused by torch.load, loaded differently from what its bytes
// say, or read differently by different tools (CVE-2026-24747's classes and
// picklescan's advisories).
#pragma once
#include <string>
#include <vector>

#include "torch/checkpoint.h"

namespace ckpt::torch {

// One line per problem, naming the file and the record / object:
// - a zip without a `version` (or `.data/version`) record: torch refuses it;
// - zip records with general-purpose flag bits torch.save never sets
//   (encryption, patched data, ...): readers disagree on them;
// - a record torch never unpickles that holds a pickle (hidden from scanners
//   that read only `*.pkl`, or a second payload for another loader);
// - SETITEM(S) applied to something other than a dict (torch.load then calls
//   that object's __setitem__: a tensor's data changes as it loads);
// - a non-zip file that also carries a zip end record (a polyglot: torch
//   reads one container, zip tools and some scanners the other).
std::vector<std::string> integrity_problems(const Checkpoint& ck);

}  // namespace ckpt::torch
