#include "cli/docs.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <string_view>

#include "api/operations.h"
#include "cli/commands.h"
#include "cli/completion_shells.h"
#include "util/error.h"
#include "util/suggest.h"

namespace ckpt::cli {

namespace {

// One worked example per command: the command line a user types and what it
// prints (shortened where long). Shown by `ckpt help COMMAND`, `--help` and
// the man page. A constant array searched in order: `ckpt CMD` looks one up
// at start (add_example_footers), and building a std::map of all 25 cost
// ~35K instructions there, 5% of a small pickle's `ckpt scan` (issue 25).
struct Example {
  std::string_view command;
  const char* text;
};
constexpr Example kExamples[] = {
      {"info",
       "$ ckpt info examples/musicgen_tiny_training.th\n"
       "file        examples/musicgen_tiny_training.th (335.25 KB)\n"
       "format      zip, torch-1.6 dialect, archive 'musicgen_tiny_training', 218 records\n"
       "layout      audiocraft-training\n"
       "best state  best_state/model\n"
       "...\n"
       "state dicts\n"
       "  best_state/model: 36 tensors, 12,784 parameters, float16 25.57 KB\n"
       "$ ckpt info examples/musicgen_tiny_training.th --json | jq .layout"},
      {"ls",
       "$ ckpt ls examples/musicgen_tiny_training.th best_state --depth 1\n"
       "best_state: dict (1 key)\n"
       "  model: dict (36 keys)"},
      {"tensors",
       "$ ckpt tensors examples/musicgen_tiny_training.th --match 'emb.*'\n"
       "name          dtype      shape                        numel       bytes\n"
       "emb.0.weight  float16    [33, 16]                       528     1.06 KB\n"
       "...\n"
       "4 tensors, 2,112 elements, 4.22 KB (best_state/model)\n"
       "$ ckpt tensors examples/musicgen_tiny_training.th --group 1            # parameters and bytes per top-level module\n"
       "group                tensors       parameters       bytes   share\n"
       "condition_provider         2              208       416 B    1.6%\n"
       "emb                        4            2,112     4.22 KB   16.5%\n"
       "...\n"
       "$ ckpt tensors examples/musicgen_tiny_training.th --json | jq '.[0].shape'"},
      {"show",
       "$ ckpt show examples/musicgen_tiny_training.th emb.0.weight --head 8\n"
       "emb.0.weight: float16 [33, 16], 528 elements\n"
       "[[ 0.23254,  -1.1016,  -1.2471, ...,   1.5684, -0.11053, -0.25708],\n"
       " ...]\n"
       "... 32 more rows (--head 0 shows all)\n"
       "$ ckpt show examples/musicgen_tiny_training.th out_norm.weight --head 8   # a vector: its first values\n"
       "out_norm.weight: float16 [16], 16 elements\n"
       "0.99951 0.99951 0.99951 0.99951 0.99951 0.99951 0.99951 0.99951\n"
       "... 8 more (--head 0 shows all)"},
      {"verify",
       "$ ckpt verify examples/musicgen_tiny_training.th && echo intact\n"
       "examples/musicgen_tiny_training.th: ok (218 records, 216 tensors checked)\n"
       "intact"},
      {"cfg",
       "$ ckpt cfg examples/musicgen_tiny_training.th optim.adam\n"
       "betas:\n"
       "- 0.9\n"
       "- 0.95\n"
       "weight_decay: 0.1\n"
       "eps: 1.0e-08\n"
       "$ LR=$(ckpt cfg examples/musicgen_tiny_training.th optim.lr)          # a scalar prints bare, ${...} resolved\n"
       "$ ckpt cfg examples/musicgen_tiny_training.th optim.lr --raw          # the text as stored\n"
       "$ ckpt cfg mbd.th --path 0/cfg              # a config elsewhere than xp.cfg\n"
       "$ ckpt cfg examples/musicgen_tiny_training.th > xp.yaml"},
      {"rewrite",
       "$ ckpt rewrite examples/musicgen_tiny_training.th -o resaved.th       # as torch.save(torch.load(...)) would\n"
       "wrote resaved.th"},
      {"edit",
       "$ ckpt edit examples/musicgen_tiny_training.th -o init.th optim.lr=1e-5 ++dataset.train.path=/data/ft \\\n"
       "      --drop 'condition_provider.*'      # --dry-run (-n): the same summary, nothing written\n"
       "xp.cfg: dataset.train.path: (absent) -> '/data/ft'\n"
       "xp.cfg: optim.lr: 1 -> 1e-05\n"
       "best_state/model: dropped condition_provider.conditioners.description.output_proj.weight\n"
       "best_state/model: dropped condition_provider.conditioners.description.output_proj.bias\n"
       "best_state/model: 36 keys, 2 dropped, 0 renamed, 34 left\n"
       "wrote init.th (320,205 bytes)"},
      {"compact",
       "$ ckpt edit init.th --in-place optim.epochs=50  # appends; the old metadata stays as dead bytes\n"
       "xp.cfg: optim.epochs: 500 -> 50\n"
       "updated init.th in place (73,836 bytes appended)\n"
       "$ ckpt compact init.th\n"
       "compacted init.th: 394,041 -> 320,205 bytes"},
      {"export",
       "$ ckpt export examples/musicgen_tiny_training.th -o state_dict.bin\n"
       "wrote state_dict.bin (exported from best_state/model)"},
      {"wrap",
       "$ ckpt wrap state_dict.bin -o checkpoint.th\n"
       "wrote checkpoint.th"},
      {"bundle",
       "$ ckpt bundle examples/musicgen_tiny_training.th -o my_musicgen\n"
       "wrote my_musicgen/state_dict.bin and my_musicgen/compression_state_dict.bin (compression model "
       "//pretrained/facebook/encodec_32khz, from xp.cfg)\n"
       "$ python3 -c \"from audiocraft.models import MusicGen; MusicGen.get_pretrained('my_musicgen')\""},
      {"sanitize",
       "$ ckpt sanitize examples/musicgen_tiny_training.th -o safe.th         # then torch.load(..., weights_only=True) works\n"
       "wrote safe.th"},
      {"scan",
       "$ ckpt scan suspicious.pkl; echo exit $?\n"
       "NOT ALLOWED idlelib.pyshell.ModifiedInterpreter.runcode (called) in record pickle at pickle offset 59 "
       "(file offset 59)\n"
       "suspicious.pkl: unsafe (pickle, 1 pickle read, 1 global, 1 not allowed)\n"
       "exit 1"},
      {"diff",
       "$ ckpt diff examples/musicgen_tiny_training.th init.th; echo exit $?     # --atol/--rtol: values within a tolerance are equal\n"
       "a: examples/musicgen_tiny_training.th [best_state/model]\n"
       "b: init.th [best_state/model]\n"
       "tensors: 34 in both, 2 only in a, 0 only in b, 0 dtype/shape changes, 0 with other values\n"
       "  only in a  condition_provider.conditioners.description.output_proj.weight\n"
       "  only in a  condition_provider.conditioners.description.output_proj.bias\n"
       "xp.cfg: dataset.train.path: (absent) -> '/data/ft'\n"
       "xp.cfg: optim.lr: 1 -> 1e-05\n"
       "different\n"
       "exit 1"},
      {"stats",
       "$ ckpt stats examples/musicgen_tiny_training.th --match 'emb.0.*' --check-finite; echo exit $?\n"
       "name          dtype           numel    nan    inf          min          max         mean          std         norm\n"
       "emb.0.weight  float16           528      0      0     -2.92578       3.0293    -0.095372      1.00089      23.0811\n"
       "exit 0"},
      {"safetensors",
       "$ ckpt safetensors examples/musicgen_tiny_training.th -o model.safetensors\n"
       "wrote model.safetensors: 36 tensors, 25.57 KB (from best_state/model)\n"
       "$ python3 -c \"from safetensors.torch import load_file; print(len(load_file('model.safetensors')))\"\n"
       "36"},
      {"from-safetensors",
       "$ ckpt from-safetensors model.safetensors -o state_dict.th\n"
       "wrote state_dict.th: 36 tensors (a plain state dict, in the file's header order)\n"
       "$ ckpt from-safetensors model.safetensors --into examples/musicgen_tiny_training.th -o finetuned.th\n"
       "wrote finetuned.th: best_state/model: 36 tensors replaced, everything else kept\n"
       "$ ckpt diff examples/musicgen_tiny_training.th model.safetensors       # a conversion checked with the same tool"},
      {"consolidate",
       "$ ckpt consolidate step_1000/ -o model.pt   # a DCP folder (.metadata + __*_*.distcp)\n"
       "wrote model.pt: 6 tensors (702 B), 1 other item, from 2 files"},
      {"to-dcp",
       "$ ckpt to-dcp model.pt -o step_0/ --ranks 2   # dcp.load reads it, resharded or not\n"
       "wrote step_0/: 6 tensors (702 B) in 2 rank files, 1 other item"},
      {"to-transformers",
       "$ ckpt edit examples/musicgen_tiny_training.th -o lm16.th transformer_lm.dim=16 transformer_lm.num_heads=2 \\\n"
       "      transformer_lm.num_layers=2 transformer_lm.card=32 -q    # the example's stock config, fitted to its toy weights\n"
       "$ ckpt to-transformers lm16.th -o decoder-hf     # no encoders given\n"
       "note: decoder only (MusicgenForCausalLM): no --text-encoder (the T5 xp.cfg names: 't5-base'), ...; the text\n"
       "projection is in projections.safetensors\n"
       "...\n"
       "wrote decoder-hf: MusicgenForCausalLM, 42 tensors, 25.15 KB in 1 safetensors file + config.json, "
       "generation_config.json\n"
       "$ ckpt to-transformers state_dict.bin -o musicgen-hf --text-encoder t5-base/ --audio-encoder encodec_32khz/\n"
       "$ ckpt to-transformers compression_state_dict.bin -o encodec-hf   # an AudioCraft EnCodec: EncodecModel"},
      {"from-transformers",
       "$ ckpt from-transformers decoder-hf -o my_musicgen_again   # MusicGen.get_pretrained('my_musicgen_again') loads it\n"
       "wrote my_musicgen_again: state_dict.bin (36 tensors), compression_state_dict.bin (pointer facebook/encodec_32khz)\n"
       "$ ckpt from-transformers encodec-hf -o my_encodec      # CompressionModel.get_pretrained('my_encodec') loads it"},
      {"help",
       "$ ckpt help edit                           # the same as: ckpt edit --help"},
      {"completion",
       "$ source <(ckpt completion bash)           # this shell\n"
       "$ ckpt completion bash > ~/.local/share/bash-completion/completions/ckpt\n"
       "$ ckpt completion zsh > \"${fpath[1]}/_ckpt\"\n"
       "$ ckpt completion fish > ~/.config/fish/completions/ckpt.fish"},
      {"man",
       "$ ckpt man | man -l -\n"
       "$ ckpt man > ~/.local/share/man/man1/ckpt.1"},
};

// The listed commands (hidden helpers such as __config-keys have no group).
std::vector<CLI::App*> commands_of(CLI::App& app) {
  return app.get_subcommands([](CLI::App* s) { return !s->get_group().empty(); });
}
std::vector<const CLI::App*> commands_of(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
}

bool is_help(const CLI::Option* o) {
  for (const auto& l : o->get_lnames())
    if (l == "help" || l == "help-all") return true;
  return false;
}

std::string flag_name(const CLI::Option* o) {
  if (!o->get_lnames().empty()) return "--" + o->get_lnames()[0];
  return "-" + o->get_snames()[0];
}

bool takes_value(const CLI::Option* o) { return o->get_expected_max() > 0; }  // flags expect 0 values

std::string value_name(const CLI::Option* o) {
  std::string n = o->get_lnames().empty() ? o->get_snames()[0] : o->get_lnames()[0];
  for (auto& c : n) c = c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return n;
}

// "ckpt edit FILE [OVERRIDES...] [-o OUTPUT] [--force]".
std::string synopsis(const CLI::App& sub) {
  std::string s = "ckpt " + sub.get_name();
  for (const CLI::Option* o : sub.get_options()) {
    if (!o->get_positional() || o->nonpositional()) continue;
    std::string name = o->get_name(true);
    if (o->get_items_expected_max() > 1) name += "...";
    s += " " + (o->get_required() ? name : "[" + name + "]");
  }
  for (const CLI::Option* o : sub.get_options()) {
    if (!o->nonpositional() || is_help(o)) continue;
    std::string part = flag_name(o);
    if (takes_value(o)) part += " " + value_name(o);
    s += " " + (o->get_required() ? part : "[" + part + "]");
  }
  return s;
}

std::string roff_escape(const std::string& text) {
  std::string out;
  bool line_start = true;
  for (char c : text) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    line_start = c == '\n';
    if (c == '\\') out += "\\e";
    else if (c == '-') out += "\\-";
    else out += c;
  }
  return out;
}

std::string shell_words(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += (s.empty() ? "" : " ") + w;
  return s;
}

void print_help_of(CLI::App& app, const std::string& command) {
  if (command.empty()) {
    std::fputs(app.get_formatter()->make_help(&app, "ckpt", CLI::AppFormatMode::Normal).c_str(), stdout);
    return;
  }
  for (CLI::App* sub : commands_of(app))
    if (sub->get_name() == command) {
      std::fputs(sub->help("ckpt").c_str(), stdout);
      return;
    }
  std::vector<std::string> names;
  for (CLI::App* sub : commands_of(app)) names.push_back(sub->get_name());
  throw UsageError("no command '" + command + "'" + did_you_mean(command, names) + " (see 'ckpt --help')");
}

}  // namespace

std::string example_for(const std::string& command) {
  for (const Example& e : kExamples)
    if (e.command == command) return e.text;
  return std::string();
}

std::string bash_completion(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : commands_of(app)) names.push_back(sub->get_name());
  std::string s =
      "# bash completion for ckpt, generated by 'ckpt completion bash' from the command definitions.\n"
      "_ckpt() {\n"
      "  local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"\"\n"
      "  (( COMP_CWORD > 0 )) && prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n"
      "  local commands=\"" + shell_words(names) + "\"\n"
      "  if (( COMP_CWORD <= 1 )); then\n"
      "    COMPREPLY=( $(compgen -W \"$commands --help --version\" -- \"$cur\") )\n"
      "    return 0\n"
      "  fi\n"
      "  local options=\"\" valued=\"\"\n"
      "  case \"${COMP_WORDS[1]}\" in\n";
  for (const CLI::App* sub : commands_of(app)) {
    std::vector<std::string> options, valued;
    for (const CLI::Option* o : sub->get_options()) {
      if (!o->nonpositional()) continue;
      for (const auto& l : o->get_lnames()) (takes_value(o) ? valued : options).push_back("--" + l);
      for (const auto& n : o->get_snames()) (takes_value(o) ? valued : options).push_back("-" + n);
    }
    std::vector<std::string> all = options;
    all.insert(all.end(), valued.begin(), valued.end());
    s += "    " + sub->get_name() + ")\n";
    if (sub->get_name() == "help") {
      s += "      COMPREPLY=( $(compgen -W \"$commands\" -- \"$cur\") ); return 0;;\n";
      continue;
    }
    if (sub->get_name() == "completion") {
      s += "      COMPREPLY=( $(compgen -W \"bash zsh fish\" -- \"$cur\") ); return 0;;\n";
      continue;
    }
    s += "      options=\"" + shell_words(all) + "\"; valued=\"" + shell_words(valued) + "\";;\n";
  }
  s +=
      "  esac\n"
      "  # After an option that takes a value, and for FILE arguments: readline's\n"
      "  # file name completion (complete -o default).\n"
      "  # Values ckpt knows: --dialect's, and from FILE (the word after the command)\n"
      "  # its state paths, tensor names and config keys.\n"
      "  local file=\"${COMP_WORDS[2]}\" words=\"\"\n"
      "  case \"$prev\" in\n"
      "    --dialect) COMPREPLY=( $(compgen -W \"1.6 2.1 2.7\" -- \"$cur\") ); return 0;;\n"
      "    --state) [[ -e \"$file\" ]] && words=$(ckpt __names \"$file\" states 2>/dev/null)\n"
      "      COMPREPLY=( $(compgen -W \"$words\" -- \"$cur\") ); return 0;;\n"
      "    --match|--drop|--keep) [[ -e \"$file\" ]] && words=$(ckpt __names \"$file\" tensors 2>/dev/null)\n"
      "      COMPREPLY=( $(compgen -W \"$words\" -- \"$cur\") ); return 0;;\n"
      "  esac\n"
      "  if (( COMP_CWORD == 3 )) && [[ \"$cur\" != -* && -e \"$file\" ]]; then\n"
      "    case \"${COMP_WORDS[1]}\" in\n"
      "      show) words=$(ckpt __names \"$file\" tensors 2>/dev/null);;\n"
      "      ls) words=$(ckpt __names \"$file\" states 2>/dev/null);;\n"
      "      cfg) words=$(ckpt __config-keys \"$file\" 2>/dev/null);;\n"
      "    esac\n"
      "    if [[ -n \"$words\" ]]; then COMPREPLY=( $(compgen -W \"$words\" -- \"$cur\") ); return 0; fi\n"
      "  fi\n"
      "  case \" $valued \" in *\" $prev \"*) COMPREPLY=(); return 0;; esac\n"
      "  # edit FILE KEY=...: the config keys of FILE's xp.cfg (prefixes +, ++, ~ kept).\n"
      "  if [[ \"${COMP_WORDS[1]}\" == edit && \"$cur\" != -* ]] && (( COMP_CWORD >= 3 )) && [[ -f \"${COMP_WORDS[2]}\" ]]; then\n"
      "    local pre=\"\" suffix=\"=\"\n"
      "    case \"$cur\" in ++*) pre=\"++\";; +*) pre=\"+\";; \\~*) pre=\"~\"; suffix=\"\";; esac\n"
      "    local keys; keys=$(ckpt __config-keys \"${COMP_WORDS[2]}\" 2>/dev/null)\n"
      "    COMPREPLY=( $(compgen -P \"$pre\" -S \"$suffix\" -W \"$keys\" -- \"${cur#\"$pre\"}\") )\n"
      "    [[ -n \"$suffix\" ]] && compopt -o nospace 2>/dev/null\n"
      "    return 0\n"
      "  fi\n"
      "  if [[ \"$cur\" == -* ]]; then\n"
      "    COMPREPLY=( $(compgen -W \"$options\" -- \"$cur\") )\n"
      "  else\n"
      "    COMPREPLY=()\n"
      "  fi\n"
      "  return 0\n"
      "}\n"
      "complete -o default -F _ckpt ckpt\n";
  return s;
}

std::string man_page(const CLI::App& app) {
  std::string s;
  s += ".\\\" Generated by 'ckpt man' from the command definitions.\n";
  s += std::string(".TH CKPT 1 \"\" \"ckpt ") + api::version() + "\" \"User Commands\"\n";
  s += ".SH NAME\nckpt \\- " + roff_escape(app.get_description().substr(app.get_description().find(':') + 2)) + "\n";
  s += ".SH SYNOPSIS\n.B ckpt\n.I COMMAND\n.RI [ ARGUMENTS ]\n.RI [ OPTIONS ]\n.br\n.B ckpt help\n.RI [ COMMAND ]\n";
  s += ".SH DESCRIPTION\n" + roff_escape(
      "ckpt reads and writes PyTorch checkpoints (torch.save's zip format and the legacy format), "
      "AudioCraft's training and exported layouts above all. It never executes pickled code: pickles are "
      "read into an object graph and written back exactly as torch.save would write the same objects. "
      "Outputs are written atomically (a temporary file beside the target, fsync'd and renamed); an "
      "existing output is replaced only with --force.") + "\n";
  s += ".SH COMMANDS\n";
  for (const CLI::App* sub : commands_of(app)) {
    s += ".SS \"" + roff_escape(synopsis(*sub)) + "\"\n";
    s += roff_escape(sub->get_description()) + "\n";
    for (const CLI::Option* o : sub->get_options()) {
      if (is_help(o)) continue;
      std::string name;
      if (o->nonpositional()) {
        for (const auto& n : o->get_snames()) name += (name.empty() ? "-" : ", -") + n;
        for (const auto& l : o->get_lnames()) name += (name.empty() ? "--" : ", --") + l;
        if (takes_value(o)) name += " " + value_name(o);
      } else {
        name = o->get_name(true);
      }
      s += ".TP\n.B " + roff_escape(name) + "\n" + roff_escape(o->get_description().empty() ? "(no description)"
                                                                                             : o->get_description()) +
           "\n";
    }
    std::string ex = example_for(sub->get_name());
    if (!ex.empty()) s += ".PP\nExample:\n.PP\n.RS 4\n.nf\n" + roff_escape(ex) + "\n.fi\n.RE\n";
  }
  s += ".SH EXIT STATUS\n.TP\n.B 0\nsuccess\n.TP\n.B 1\n" +
       roff_escape("a check found something (verify, scan, diff, stats --check-finite, sanitize refusing)") +
       "\n.TP\n.B 2\n" + roff_escape("bad usage or bad input; one line 'ckpt: error: ...' on stderr") + "\n";
  s += ".SH ENVIRONMENT\n.TP\n.B CKPT_PROGRESS_MIN_BYTES\n" +
       roff_escape("size from which writes show a progress bar on a terminal (default 268435456, 256 MB)") + "\n";
  s += ".SH SEE ALSO\n.BR python3 (1),\nREADME.md of the ckpt sources\n";
  return s;
}

void add_example_footers(CLI::App& app) {
  for (CLI::App* sub : commands_of(app)) {
    std::string ex = example_for(sub->get_name());
    if (!ex.empty()) sub->footer("\nExample:\n" + ex + "\n");
  }
  app.footer("\nRun 'ckpt help COMMAND' for a command's options and a worked example.\n");
}

void register_docs_commands(CLI::App& app, Context& ctx) {
  add_example_footers(app);

  auto command = std::make_shared<std::string>();
  auto* help = app.add_subcommand("help", "show a command's options and a worked example");
  help->add_option("COMMAND", *command, "a command name");
  help->callback([&app, &ctx, command] {
    print_help_of(app, *command);
    ctx.exit_code = 0;
  });

  auto shell = std::make_shared<std::string>();
  auto* completion = app.add_subcommand("completion", "print a shell completion script (bash, zsh or fish)");
  completion->add_option("SHELL", *shell, "bash, zsh or fish")->required()->check(CLI::IsMember({"bash", "zsh", "fish"}));
  // The lambda holds `shell`: the option above writes into it at parse time.
  completion->callback([&app, &ctx, shell] {
    std::string script = *shell == "zsh" ? zsh_completion(app) : *shell == "fish" ? fish_completion(app)
                                                                                  : bash_completion(app);
    std::fputs(script.c_str(), stdout);
    ctx.exit_code = 0;
  });

  auto* man = app.add_subcommand("man", "print the manual page (roff; view with 'ckpt man | man -l -')");
  man->callback([&app, &ctx] {
    std::fputs(man_page(app).c_str(), stdout);
    ctx.exit_code = 0;
  });

  for (CLI::App* sub : {help, completion, man}) sub->footer("\nExample:\n" + example_for(sub->get_name()) + "\n");
}

}  // namespace ckpt::cli
