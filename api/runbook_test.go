package api_test

import (
	"encoding/json"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/reembed/reembed/planner/jobs"
)

// curlCommand is one curl invocation of the runbook.
type curlCommand struct {
	line    int
	method  string
	url     string
	headers map[string]string
	data    string
	assign  string // VAR of VAR=$(curl ... | jq -r .FIELD)
	field   string // FIELD
	until   string // EXPR of until curl ... | jq -e 'EXPR' >/dev/null; do sleep N; done
}

// parseRunbook reads the curl commands of a POSIX sh runbook. It knows the
// little shell the runbook uses (comments, line continuations, quotes,
// $VAR, VAR=$(curl ... | jq -r .FIELD)) and fails on anything else, so the
// file cannot drift from what the test replays.
func parseRunbook(t *testing.T, path string, vars map[string]string) []curlCommand {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cmds []curlCommand
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		line := lines[i]
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || line == "set -eu" {
			continue
		}
		var c curlCommand
		c.line = start
		if rest, ok := strings.CutPrefix(line, "until "); ok {
			body, tail, ok := strings.Cut(rest, " | jq -e '")
			expr, loop, ok2 := strings.Cut(tail, "' >/dev/null; do sleep ")
			if !ok || !ok2 || !strings.HasSuffix(loop, "; done") {
				t.Fatalf("%s:%d: want until curl ... | jq -e 'EXPR' >/dev/null; do sleep N; done: %s", path, start, line)
			}
			c.until, line = expr, body
		}
		if name, rest, ok := strings.Cut(line, "=$("); ok && !strings.ContainsAny(name, " \"'") {
			body, jq, ok := strings.Cut(strings.TrimSuffix(rest, ")"), " | jq -r .")
			if !ok {
				t.Fatalf("%s:%d: want VAR=$(curl ... | jq -r .FIELD): %s", path, start, line)
			}
			c.assign, c.field, line = name, jq, body
		}
		words := shellWords(t, line, vars)
		if len(words) == 0 || words[0] != "curl" {
			t.Fatalf("%s:%d: not a curl command: %s", path, start, line)
		}
		c.headers = map[string]string{}
		for j := 1; j < len(words); j++ {
			switch w := words[j]; w {
			case "-fsS":
			case "-X":
				j++
				c.method = words[j]
			case "-H":
				j++
				k, v, _ := strings.Cut(words[j], ":")
				c.headers[k] = strings.TrimSpace(v)
			case "-d":
				j++
				c.data = words[j]
			default:
				if strings.HasPrefix(w, "-") || c.url != "" {
					t.Fatalf("%s:%d: the test does not replay curl argument %q", path, start, w)
				}
				c.url = w
			}
		}
		if c.method == "" {
			c.method = "GET"
			if c.data != "" {
				c.method = "POST"
			}
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// shellWords splits a line into words as sh does for the runbook's subset:
// single quotes literal, double quotes and bare words expand $VAR and ${VAR}.
func shellWords(t *testing.T, line string, vars map[string]string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	in := false
	expand := func(s string) string {
		return os.Expand(s, func(k string) string {
			v, ok := vars[k]
			if !ok {
				t.Fatalf("runbook uses $%s, which the test does not set", k)
			}
			return v
		})
	}
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; {
		case ch == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			cur.WriteString(line[i+1 : i+1+j])
			i += j + 1
			in = true
		case ch == '"':
			j := strings.IndexByte(line[i+1:], '"')
			cur.WriteString(expand(line[i+1 : i+1+j]))
			i += j + 1
			in = true
		case ch == ' ' || ch == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			j := i
			for j < len(line) && !strings.ContainsRune(" \t'\"", rune(line[j])) {
				j++
			}
			cur.WriteString(expand(line[i:j]))
			i = j - 1
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// TestRunbook replays the runbook's requests (api/testdata/runbook.sh, the
// README's runbook) against the API and checks every answer against
// openapi.yaml; each must succeed, as `curl -f` requires.
func TestRunbook(t *testing.T) {
	const token = "runbook-token"
	te := newEnv(t, envOptions{token: token, gated: true})
	c := loadContract(t)
	// $ID is set by the runbook itself (step 4): a placeholder until then.
	vars := map[string]string{"REEMBED": "http://reembed.test:8080", "TOKEN": token, "ID": "ID-PLACEHOLDER"}
	cmds := parseRunbook(t, "testdata/runbook.sh", vars)
	if len(cmds) < 10 {
		t.Fatalf("the runbook has %d curl commands, want the 9 steps and a poll", len(cmds))
	}
	var jobID string
	for _, cmd := range cmds {
		u, err := url.Parse(strings.ReplaceAll(cmd.url, "ID-PLACEHOLDER", jobID))
		if err != nil {
			t.Fatalf("line %d: %v", cmd.line, err)
		}
		path := u.RequestURI()
		if cmd.until != "" {
			// The runbook polls until the job has stopped: it does once its
			// request in flight returns and is committed.
			te.gate.release()
			if _, err := te.jobs.Wait(t.Context(), jobID); err != nil {
				t.Fatal(err)
			}
		}
		r := request{method: cmd.method, path: path, body: cmd.data, header: cmd.headers}
		rec := c.check(t, te, r)
		if rec.Code >= 400 {
			t.Fatalf("runbook line %d: %s %s answered %d (curl -f fails): %s", cmd.line, cmd.method, path, rec.Code, trim(rec.Body.String()))
		}
		if cmd.assign != "" {
			var v map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
				t.Fatalf("line %d: %v", cmd.line, err)
			}
			if cmd.assign != "ID" || cmd.field != "id" {
				t.Fatalf("line %d: the test knows ID=$(... | jq -r .id) only", cmd.line)
			}
			jobID = v["id"].(string)
			<-te.gate.calls // the job runs: its first request is in flight
		}
		switch {
		case cmd.until != "":
			if want := `.state == "cancelled"`; cmd.until != want {
				t.Fatalf("line %d: the test knows until ... | jq -e '%s' only", cmd.line, want)
			}
			if j := decode[jobs.Job](t, rec); j.State != jobs.Cancelled {
				t.Errorf("line %d: polled state %s, want cancelled", cmd.line, j.State)
			}
		case strings.HasSuffix(path, "state=running"):
			if l := decode[struct{ Rebuilds []jobs.Job }](t, rec); len(l.Rebuilds) != 1 || l.Rebuilds[0].ID != jobID {
				t.Errorf("line %d: running jobs %+v, want %s", cmd.line, l.Rebuilds, jobID)
			}
		case strings.HasSuffix(path, "/cancel"):
			if j := decode[jobs.Job](t, rec); !j.CancelRequested {
				t.Errorf("line %d: cancel answered %+v", cmd.line, j)
			}
		}
	}
	if jobID == "" {
		t.Fatal("the runbook never started a rebuild")
	}
	j, err := te.jobs.Wait(t.Context(), jobID)
	if err != nil || j.State != jobs.Succeeded || j.Spec.BudgetUSD != 10_000_000 || j.Runs != 2 {
		t.Errorf("after the runbook: %s (%s), budget %s, %d runs, %v", j.State, j.LastError, j.Spec.BudgetUSD, j.Runs, err)
	}
}

// TestRunbookInREADME checks that the runbook printed in the README (and in
// api/README-section.md, its source) is the one TestRunbook replays.
func TestRunbookInREADME(t *testing.T) {
	vars := map[string]string{"REEMBED": "http://x", "TOKEN": "t", "ID": "ID-PLACEHOLDER"}
	want := parseRunbook(t, "testdata/runbook.sh", vars)
	for _, doc := range []string{"README-section.md", "../README.md"} {
		b, err := os.ReadFile(doc)
		if err != nil || !strings.Contains(string(b), "api/testdata/runbook.sh") {
			t.Logf("%s has no runbook section; skipped", doc)
			continue
		}
		text := string(b)
		_, after, _ := strings.Cut(text, "### Runbook")
		_, block, _ := strings.Cut(after, "```sh\n")
		block, _, _ = strings.Cut(block, "```")
		var kept []string // drop the variable assignment line the script takes from its environment
		for _, l := range strings.Split(block, "\n") {
			if !strings.HasPrefix(l, "REEMBED=") {
				kept = append(kept, l)
			}
		}
		tmp := t.TempDir() + "/runbook.sh"
		os.WriteFile(tmp, []byte(strings.Join(kept, "\n")), 0o644)
		got := parseRunbook(t, tmp, vars)
		if len(got) != len(want) {
			t.Fatalf("%s: %d curl commands, runbook.sh has %d", doc, len(got), len(want))
		}
		for i := range want {
			g, w := got[i], want[i]
			g.line, w.line = 0, 0
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s: command %d differs from runbook.sh:\n got  %+v\n want %+v", doc, i+1, g, w)
			}
		}
	}
}
