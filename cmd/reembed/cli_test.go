package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/pricing"
)

// runEnv runs reembed with args and the environment vars (nothing else).
func runEnv(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(t.Context(), args, &env{stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }})
	return code, out.String(), errb.String()
}

// tinyCheckpoint rebuilds a small corpus with the in-process simulator and
// returns the corpus and the checkpoint directory.
func tinyCheckpoint(t *testing.T) (corpusDir, ckpt string) {
	t.Helper()
	corpusDir = smallCorpus(t)
	ckpt = filepath.Join(t.TempDir(), "ckpt")
	code, _, errOut := runMain(t, "rebuild", corpusDir, "--out", ckpt, "--rpm", "0", "--tpm", "0", "--quiet")
	if code != exitOK {
		t.Fatalf("rebuild: exit %d: %s", code, errOut)
	}
	return corpusDir, ckpt
}

func TestFlagsAnywhere(t *testing.T) {
	dir := smallCorpus(t)
	t.Run("EstimatePathThenFormat", func(t *testing.T) {
		code, out, errOut := runMain(t, "estimate", dir, "--format", "json")
		if code != exitOK || !json.Valid([]byte(out)) {
			t.Errorf("estimate DIR --format json: exit %d, stderr %q, stdout not JSON: %.200s", code, errOut, out)
		}
	})
	t.Run("SingleDashAndEquals", func(t *testing.T) {
		code, out, errOut := runMain(t, "estimate", "-format=json", dir, "-rpm", "100")
		if code != exitOK || !json.Valid([]byte(out)) {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("VerifyPathThenCheckpoint", func(t *testing.T) {
		corpusDir, ckpt := tinyCheckpoint(t)
		code, out, errOut := runMain(t, "verify", corpusDir, "--checkpoint", ckpt)
		if code != exitOK || !strings.Contains(out, "0 missing") {
			t.Errorf("verify DIR --checkpoint CKPT: exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("DoubleDashEndsFlags", func(t *testing.T) {
		wd := t.TempDir()
		os.WriteFile(filepath.Join(wd, "--weird-file-name"), []byte("hello weird world"), 0o644)
		t.Chdir(wd)
		code, out, errOut := runMain(t, "estimate", "--format", "json", "--", "--weird-file-name")
		if code != exitOK || !strings.Contains(out, `"documents": 1`) {
			t.Errorf("estimate -- --weird-file-name: exit %d, stderr %q, stdout %.300s", code, errOut, out)
		}
	})
	t.Run("NegativeValueIsAValue", func(t *testing.T) {
		code, _, errOut := runMain(t, "estimate", dir, "--jobs", "-1")
		if code != exitUsage || !strings.Contains(errOut, "--jobs -1") {
			t.Errorf("--jobs -1: exit %d, stderr %q; want 2 naming --jobs -1", code, errOut)
		}
	})
}

func TestEnvironmentSetsFlags(t *testing.T) {
	dir := smallCorpus(t)
	t.Run("EnvUsed", func(t *testing.T) {
		code, out, _ := runEnv(t, map[string]string{"REEMBED_FORMAT": "json", "REEMBED_CHUNK_TOKENS": "100", "REEMBED_CHUNK_OVERLAP": "10"}, "estimate", dir)
		if code != exitOK || !strings.Contains(out, `"chunk_tokens": 100`) {
			t.Errorf("REEMBED_FORMAT/REEMBED_CHUNK_TOKENS ignored: exit %d, %.300s", code, out)
		}
	})
	t.Run("FlagWins", func(t *testing.T) {
		code, out, _ := runEnv(t, map[string]string{"REEMBED_FORMAT": "json"}, "estimate", dir, "--format", "table")
		if code != exitOK || !strings.Contains(out, "MODEL") {
			t.Errorf("--format table with REEMBED_FORMAT=json: exit %d, %.200s", code, out)
		}
	})
	t.Run("BadValueNamesVariable", func(t *testing.T) {
		code, _, errOut := runEnv(t, map[string]string{"REEMBED_RPM": "lots"}, "estimate", dir)
		if code != exitUsage || !strings.Contains(errOut, "REEMBED_RPM") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("HelpNamesVariables", func(t *testing.T) {
		_, out, _ := runMain(t, "help", "rebuild")
		if !strings.Contains(out, "$REEMBED_CHUNK_TOKENS") || !strings.Contains(out, "--dry-run") {
			t.Errorf("help rebuild lacks $REEMBED_CHUNK_TOKENS or --dry-run:\n%s", out)
		}
	})
}

func TestDidYouMean(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"estmate"}, `did you mean "estimate"?`},
		{[]string{"verfy"}, `did you mean "verify"?`},
		{[]string{"estimate", "--formt", "json"}, "did you mean --format?"},
		{[]string{"rebuild", "--chunk-token", "3"}, "did you mean --chunk-tokens?"},
		{[]string{"help", "rebiuld"}, `did you mean "rebuild"?`},
	} {
		code, out, errOut := runMain(t, tt.args...)
		lines := strings.Split(strings.TrimSpace(errOut), "\n")
		if code != exitUsage || !strings.Contains(errOut, tt.want) || len(lines) != 1 || out != "" {
			t.Errorf("reembed %q: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", tt.args, code, out, errOut, tt.want)
		}
	}
}

func TestVersionHelpCompletion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"estimate", "--version"}} {
		code, out, _ := runMain(t, args...)
		if code != exitOK || !strings.HasPrefix(out, "reembed ") {
			t.Errorf("reembed %q: exit %d, %q", args, code, out)
		}
	}
	code, out, _ := runMain(t, "help", "estimate")
	if code != exitOK || !strings.Contains(out, "--chunk-tokens") || !strings.Contains(out, "--fail-on-rto-miss") {
		t.Errorf("help estimate: exit %d\n%s", code, out)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, out, errOut := runMain(t, "completion", sh)
		if code != exitOK || !strings.Contains(out, "estimate") || !strings.Contains(out, "chunk-tokens") || !strings.Contains(out, "inspect") {
			t.Errorf("completion %s: exit %d, stderr %q\n%.300s", sh, code, errOut, out)
		}
		if sh == "bash" {
			if bash, err := exec.LookPath("bash"); err == nil {
				f := writeTemp(t, "c.bash", out)
				if b, err := exec.Command(bash, "-n", f).CombinedOutput(); err != nil {
					t.Errorf("bash -n on the completion script: %v\n%s", err, b)
				}
			}
		}
	}
	if code, _, _ := runMain(t, "completion", "tcsh"); code != exitUsage {
		t.Errorf("completion tcsh: exit %d, want 2", code)
	}
}

func TestGlobalLogFlags(t *testing.T) {
	dir := smallCorpus(t)
	out := filepath.Join(t.TempDir(), "c")
	code, _, errOut := runMain(t, "rebuild", dir, "--out", out, "--rpm", "0", "--tpm", "0", "--quiet")
	if code != exitOK || errOut != "" {
		t.Errorf("rebuild --quiet: exit %d, stderr %q; want nothing on stderr", code, errOut)
	}
	code, _, errOut = runMain(t, "rebuild", dir, "--out", out, "--rpm", "0", "--tpm", "0", "--log-format", "json", "--progress-interval", "1h")
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		if line != "" && !json.Valid([]byte(line)) {
			t.Errorf("--log-format json: a stderr line is not JSON: %q", line)
		}
	}
	if code != exitOK {
		t.Errorf("exit %d", code)
	}
	if code, _, errOut := runMain(t, "models", "--log-format", "xml"); code != exitUsage || !strings.Contains(errOut, "--log-format") {
		t.Errorf("--log-format xml: exit %d, %q", code, errOut)
	}
}

func TestConsistentFlagNames(t *testing.T) {
	dir := smallCorpus(t)
	code, _, errOut := runMain(t, "rebuild", dir, "--out", filepath.Join(t.TempDir(), "a"), "--latency", "1ms", "--rpm", "0", "--tpm", "0", "--quiet")
	if code != exitOK {
		t.Errorf("rebuild --latency: exit %d, %q", code, errOut)
	}
	code, _, errOut = runMain(t, "rebuild", dir, "--out", filepath.Join(t.TempDir(), "b"), "--sim-latency", "1ms", "--rpm", "0", "--tpm", "0", "--quiet")
	if code != exitOK || !strings.Contains(errOut, "--sim-latency is deprecated: use --latency") {
		t.Errorf("rebuild --sim-latency: exit %d, stderr %q; want it accepted with a deprecation warning", code, errOut)
	}
	_, serveHelp, _ := runMain(t, "help", "serve")
	_, simHelp, _ := runMain(t, "help", "simulate")
	if !strings.Contains(serveHelp, "--base-url") || strings.Contains(serveHelp, "--provider-base-url") || !strings.Contains(serveHelp, "--latency") {
		t.Errorf("serve's help should name --base-url and --latency, not the deprecated names:\n%s", serveHelp)
	}
	if !strings.Contains(simHelp, `"127.0.0.1:8081"`) || !strings.Contains(serveHelp, `"127.0.0.1:8080"`) {
		t.Errorf("simulate and serve must not share a default port")
	}
}

func TestValidationHoles(t *testing.T) {
	dir := smallCorpus(t)
	corpusDir, ckpt := tinyCheckpoint(t)
	out := filepath.Join(t.TempDir(), "o")
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"estimate", dir, "--concurrency", "0"}, "--concurrency 0"},
		{[]string{"estimate", dir, "--jobs", "-1"}, "--jobs -1"},
		{[]string{"estimate", dir, "--batch-size", "5000"}, "at most 2048"},
		{[]string{"rebuild", dir, "--out", out, "--batch-size", "5000"}, "at most 2048"},
		{[]string{"rebuild", dir, "--out", out, "--concurrency", "0"}, "--concurrency 0"},
		{[]string{"rebuild", dir, "--out", out, "--part-rows", "0"}, "--part-rows 0"},
		{[]string{"rebuild", dir, "--out", out, "--encoding-format", "int8"}, "--encoding-format"},
		{[]string{"verify", corpusDir, "--checkpoint", ckpt, "--chunk-tokens", "100"}, "manifest"},
		{[]string{"estimate", dir, "--fail-on-rto-miss"}, "needs --rto"},
	} {
		code, _, errOut := runMain(t, tt.args...)
		if code != exitUsage || !strings.Contains(errOut, tt.want) {
			t.Errorf("reembed %q: exit %d, stderr %q; want 2 with %q", tt.args, code, errOut, tt.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a refused rebuild created --out")
	}
	_, help, _ := runMain(t, "help", "verify")
	if strings.Contains(help, "--chunk-tokens") || strings.Contains(help, "--chunk-overlap") {
		t.Errorf("verify's help lists chunking flags it takes from the manifest:\n%s", help)
	}
	if code, _, errOut := runMain(t, "verify", corpusDir, "--checkpoint", ckpt, "--chunk-tokens", "512"); code != exitOK {
		t.Errorf("verify with the manifest's own --chunk-tokens: exit %d, %s", code, errOut)
	}
}

func TestModelsJSONIsAPricingFile(t *testing.T) {
	_, out, _ := runMain(t, "models", "--format", "json")
	p := writeTemp(t, "models.json", out)
	code, _, errOut := runMain(t, "estimate", "--pricing", p, "--documents", "10", "--tokens-per-document", "100")
	if code != exitOK {
		t.Errorf("estimate --pricing <models --format json>: exit %d, %s", code, errOut)
	}
	raised := strings.Replace(out, `"max_inputs_per_request": 2048`, `"max_inputs_per_request": 9999`, 1)
	code, _, errOut = runMain(t, "models", "--pricing", writeTemp(t, "raised.json", raised))
	if code != exitUsage || !strings.Contains(errOut, "only the price") {
		t.Errorf("a pricing file raising a built-in limit: exit %d, %q; want 2", code, errOut)
	}
}

func TestPerDocumentToStdout(t *testing.T) {
	code, out, errOut := runMain(t, "estimate", smallCorpus(t), "--per-document", "-", "--model", "voyage-3")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "doc_id\ttokens\tchunks\tbilled_tokens\tmodel\ttoken_count" || !strings.HasSuffix(lines[1], "\tvoyage-3\testimated") {
		t.Errorf("--per-document -: stdout starts %q, %q", lines[0], lines[1])
	}
	if !strings.Contains(errOut, "MODEL") {
		t.Errorf("the report should go to stderr with --per-document -: %q", errOut)
	}
}

func TestEstimateNumbersReadable(t *testing.T) {
	code, out, errOut := runMain(t, "estimate", "--documents", "10000000", "--tokens-per-document", "500", "--rto", "4h",
		"--model", "text-embedding-3-small,text-embedding-3-large,voyage-3")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"10,000,000 documents", "RTO 4h", "5,000,000,000 tokens"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "4h0m0s") {
		t.Errorf("table shows 4h0m0s:\n%s", out)
	}
	// Money: one number of decimals in the column, points aligned.
	var cols []int
	decimals := map[int]bool{}
	for _, line := range strings.Split(out, "\n") {
		if m := regexp.MustCompile(`\$[\d,]+\.(\d+)`).FindStringSubmatchIndex(line); m != nil && strings.HasPrefix(line, " ") && strings.Contains(line, "text-embedding") {
			cols = append(cols, strings.Index(line, "."))
			decimals[m[3]-m[2]] = true
		}
	}
	if len(cols) != 2 || cols[0] != cols[1] || len(decimals) != 1 {
		t.Errorf("cost column not aligned with fixed decimals (points at %v, decimals %v):\n%s", cols, decimals, out)
	}
	if !strings.Contains(out, "voyage-3: note:") {
		t.Errorf("notes are not in the table output:\n%s", out)
	}
}

func TestFailOnRTOMiss(t *testing.T) {
	args := []string{"estimate", "--documents", "10000000", "--tokens-per-document", "500", "--fail-on-rto-miss"}
	if code, out, _ := runMain(t, append(args, "--rto", "1h")...); code != exitRTOMiss || !strings.Contains(out, "NO") {
		t.Errorf("--rto 1h on a 40h rebuild: exit %d; want %d after the report", code, exitRTOMiss)
	}
	if code, _, errOut := runMain(t, append(args, "--rto", "1000h")...); code != exitOK {
		t.Errorf("--rto 1000h: exit %d, %s", code, errOut)
	}
}

func TestFormatHelpers(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 10000000: "10,000,000", -1234: "-1,234"} {
		if got := commas(in); got != want {
			t.Errorf("commas(%d) = %q, want %q", in, got, want)
		}
	}
	if plural(1, "file", "files") != "1 file" || plural(2000, "file", "files") != "2,000 files" {
		t.Errorf("plural is wrong")
	}
	for d, want := range map[time.Duration]string{4 * time.Hour: "4h", 90 * time.Minute: "1h30m", 45 * time.Second: "45s",
		1500 * time.Millisecond: "1.5s", 51 * time.Hour: "2d3h", time.Second: "1s"} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
	if got := money(12361, moneyDecimals(12361, 6180)); got != "$0.012361" {
		t.Errorf("money = %q", got)
	}
	if got := money(pricing.Micros(1234500000), 2); got != "$1,234.50" {
		t.Errorf("money = %q", got)
	}
	skipped := []corpus.Skip{{Path: "a.gz", Reason: "binary file"}, {Path: "b.gz", Reason: "binary file"}, {Path: "c.jsonl:3", Reason: "not a JSON object: bad"}}
	if got, want := skippedSummary(1794, skipped), "1,794 skipped: 2 binary file, 1 not a JSON object, 1,791 more not listed; --format json lists them"; got != want {
		t.Errorf("skippedSummary = %q, want %q", got, want)
	}
}
