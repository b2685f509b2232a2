package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
)

// commandFlags returns the flags of command c, read from its own help, so
// that completion never lists a flag the command does not take.
func commandFlags(ctx context.Context, c command) []string {
	var out bytes.Buffer
	c.run(ctx, &env{stdout: &out, stderr: io.Discard, getenv: func(string) string { return "" }}, []string{"--help"})
	var flags []string
	for _, line := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, "  --"); ok {
			name, _, _ := strings.Cut(rest, " ")
			flags = append(flags, "--"+name)
		}
	}
	return flags
}

func runCompletion(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "completion", "completion bash|zsh|fish\n\nPrints a completion script. Install it with, for example:\n  bash: reembed completion bash > /etc/bash_completion.d/reembed   (or: source <(reembed completion bash))\n  zsh:  reembed completion zsh > \"${fpath[1]}/_reembed\"\n  fish: reembed completion fish > ~/.config/fish/completions/reembed.fish")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("completion: name one shell: bash, zsh or fish")
	}
	cmds := commands()
	names := make([]string, 0, len(cmds)+1)
	flags := map[string][]string{}
	for _, c := range cmds {
		names = append(names, c.name)
		if c.name != "completion" {
			flags[c.name] = append(commandFlags(ctx, c), "--quiet", "--verbose", "--log-format", "--help")
		}
	}
	names = append(names, "help")
	switch fs.Arg(0) {
	case "bash":
		writeBash(e.stdout, names, flags)
	case "zsh":
		fmt.Fprintln(e.stdout, "#compdef reembed\nautoload -U +X bashcompinit && bashcompinit")
		writeBash(e.stdout, names, flags)
	case "fish":
		writeFish(e.stdout, cmds, flags)
	default:
		return usagef("completion %q: want bash, zsh or fish", fs.Arg(0))
	}
	return nil
}

func writeBash(w io.Writer, names []string, flags map[string][]string) {
	fmt.Fprintf(w, "_reembed() {\n  local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]}\n")
	fmt.Fprintf(w, "  if [ \"$COMP_CWORD\" -eq 1 ]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); return; fi\n", strings.Join(names, " "))
	fmt.Fprintf(w, "  case \"$cmd\" in\n")
	for _, n := range names {
		if fl, ok := flags[n]; ok {
			fmt.Fprintf(w, "    %s) if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); else COMPREPLY=($(compgen -f -- \"$cur\")); fi ;;\n", n, strings.Join(fl, " "))
		}
	}
	fmt.Fprintf(w, "    help) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", strings.Join(names, " "))
	fmt.Fprintf(w, "    completion) COMPREPLY=($(compgen -W \"bash zsh fish\" -- \"$cur\")) ;;\n  esac\n}\ncomplete -o default -F _reembed reembed\n")
}

func writeFish(w io.Writer, cmds []command, flags map[string][]string) {
	fmt.Fprintln(w, "complete -c reembed -f")
	for _, c := range cmds {
		fmt.Fprintf(w, "complete -c reembed -n __fish_use_subcommand -a %s -d %q\n", c.name, c.summary)
		for _, f := range flags[c.name] {
			fmt.Fprintf(w, "complete -c reembed -n '__fish_seen_subcommand_from %s' -l %s\n", c.name, strings.TrimPrefix(f, "--"))
		}
	}
	fmt.Fprintln(w, "complete -c reembed -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'")
}
