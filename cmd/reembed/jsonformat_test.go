package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestSimulateFormatJSON(t *testing.T) {
	stdout, stderr := newLockedBuffer(), newLockedBuffer()
	e := &env{stdout: stdout, stderr: stderr, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"simulate", "--addr", "127.0.0.1:0", "--format", "json"}, e) }()
	var started struct {
		Event, BaseURL, LedgerURL string
	}
	select {
	case line := <-stdout.line:
		var raw map[string]string
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("first stdout line is not JSON: %q", line)
		}
		started.Event, started.BaseURL, started.LedgerURL = raw["event"], raw["base_url"], raw["ledger_url"]
	case <-time.After(30 * time.Second):
		t.Fatal("simulate printed nothing")
	}
	if started.Event != "started" || !strings.HasPrefix(started.BaseURL, "http://127.0.0.1:") {
		t.Fatalf("started line = %+v", started)
	}
	resp, err := http.Get(started.LedgerURL)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %v %v", started.LedgerURL, err, resp)
	} else {
		resp.Body.Close()
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var stopped struct {
		Event  string         `json:"event"`
		Totals map[string]any `json:"totals"`
	}
	if len(lines) != 2 || json.Unmarshal([]byte(lines[1]), &stopped) != nil || stopped.Event != "stopped" || stopped.Totals == nil {
		t.Errorf("stdout = %q; want a started and a stopped JSON line", stdout.String())
	}
}

func TestDrillFormatJSON(t *testing.T) {
	bin := buildReembed(t)
	cmd := exec.Command(bin, "drill", "--format", "json", "--quiet")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("drill --format json: %v\n%s", err, out)
	}
	var res drillResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("stdout is not the JSON result: %v\n%s", err, out)
	}
	if !res.Passed || res.Documents != 269 || res.Actual.Chunks != res.Predicted.Chunks || res.Verify.Missing != 0 || res.Problems == nil {
		t.Errorf("drill result = %+v", res)
	}
}

// TestBatchDrillKeepsTheFilters: the batch drill's children read the corpus
// with the drill's own filters, so what they embed is what was predicted
// (they once dropped --exclude and embedded the whole sample).
func TestBatchDrillKeepsTheFilters(t *testing.T) {
	bin := buildReembed(t)
	out, err := exec.Command(bin, "drill", "--mode", "batch", "--exclude", "**/*.csv", "--quiet").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Drill PASSED") {
		t.Fatalf("drill --mode batch --exclude: %v\n%s", err, out)
	}
}
