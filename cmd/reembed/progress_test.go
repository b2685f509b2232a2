package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/embedder/embeddertest"
	"github.com/reembed/reembed/planner"
)

func TestProgressLineFitsWidth(t *testing.T) {
	eta := 12345.0
	p := planner.Progress{State: "running", PlannedChunks: 10_000_000, EmbeddedChunks: 1_234_567, BilledTokens: 987_654_321,
		TokensPerSecond: 123456, ETASeconds: &eta, Cost: 123456789}
	for width := 20; width <= 220; width++ {
		for _, wait := range []string{"", "429 rate limited: retrying in 2s"} {
			if got := progressLine(p, wait, width); utf8.RuneCountInString(got) > width {
				t.Errorf("width %d: %d runes: %q", width, utf8.RuneCountInString(got), got)
			}
		}
	}
	if got := progressLine(p, "429 rate limited: retrying in 2s", 199); !strings.Contains(got, "429") || !strings.Contains(got, "ETA 3h25m45s") {
		t.Errorf("at 200 columns the line should say what it waits for and the ETA: %q", got)
	}
	p0 := planner.Progress{State: "running", PlannedChunks: 100, ElapsedSeconds: 18}
	if got := progressLine(p0, "", 120); !strings.Contains(got, "waiting for the first answers") {
		t.Errorf("no progress after 18s should say what it waits for: %q", got)
	}
}

func TestStatusWriterPrintsLogsAboveTheLine(t *testing.T) {
	var buf bytes.Buffer
	s := &statusWriter{w: &buf, tty: true, width: func() int { return 40 }}
	s.SetStatus(strings.Repeat("x", 100))
	fmt.Fprintf(s, "a log line\n")
	s.EndStatus()
	want := "\r\x1b[K" + strings.Repeat("x", 39) + "\r\x1b[Ka log line\n" + strings.Repeat("x", 39) + "\n"
	if buf.String() != want {
		t.Errorf("wrote %q, want %q", buf.String(), want)
	}
	logger := slog.New(waitWatcher{slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelInfo}), s})
	logger.Debug("retrying embedding batch", "status", 429, "wait", time.Second)
	if got := s.lastWait(); got != "429 rate limited: retrying in 1s" {
		t.Errorf("lastWait after a debug retry record = %q", got)
	}
	if strings.Contains(buf.String(), "retrying embedding batch") {
		t.Errorf("a debug record was printed at info level")
	}
}

// TestProgressInTmux runs a rebuild in a real terminal (tmux) at 80 and 200
// columns and reads the screen: one progress line, never wrapped, with the
// log lines above it.
func TestProgressInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install -y tmux)")
	}
	bin := buildReembed(t)
	corpus := smallCorpus(t)
	for _, width := range []int{80, 200} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "c")
			cmd := fmt.Sprintf("%s rebuild %s --out %s --latency 150ms --batch-size 8 --concurrency 1 --rpm 0 --tpm 0 --progress-interval 50ms",
				bin, corpus, out)
			sawRunning := false
			screen := watchInTmux(t, width, cmd, 100*time.Millisecond, time.Minute, func(screen string) {
				if strings.Contains(screen, "█") && !strings.Contains(screen, "Rebuild complete") {
					sawRunning = true
					checkScreen(t, screen, width, false)
				}
			})
			if !sawRunning {
				t.Errorf("never saw the progress line while the rebuild ran")
			}
			checkScreen(t, screen, width, true)
		})
	}
}

// checkScreen checks a captured screen: bar lines fit the width (a wrapped
// line would leave a fragment starting without the bar) and appear once,
// below the log lines.
func checkScreen(t *testing.T, screen string, width int, done bool) {
	t.Helper()
	bars, lastLog, lastBar := 0, -1, -1
	for i, line := range strings.Split(screen, "\n") {
		if strings.Contains(line, "chunks  $") {
			bars++
			lastBar = i
			if !strings.HasPrefix(line, "█") && !strings.HasPrefix(line, "░") {
				t.Errorf("a progress line does not start at column 0 (wrapped or mixed with a log line): %q", line)
			}
			if n := utf8.RuneCountInString(line); n >= width {
				t.Errorf("a progress line of %d columns at width %d: %q", n, width, line)
			}
		}
		if strings.Contains(line, "level=INFO") && strings.Contains(line, "committed checkpoint part") {
			lastLog = i
		}
	}
	if bars != 1 {
		t.Errorf("%d progress lines on the screen, want 1:\n%s", bars, screen)
	}
	if done && (lastLog < 0 || lastBar < lastLog) {
		t.Errorf("the log lines are not above the progress line (log at %d, bar at %d):\n%s", lastLog, lastBar, screen)
	}
}

// TestProgressShowsRateLimiterWait wires the real rate limiter to the CLI's
// logger: while the limiter holds requests for the TPM (or RPM) budget, the
// progress line says so, even at the info log level, and the debug line is
// not printed.
func TestProgressShowsRateLimiterWait(t *testing.T) {
	for _, tc := range []struct {
		name     string
		rpm, tpm int
		want     string
	}{
		{"TPM", 0, 600, "waiting for TPM budget ("},
		{"RPM", 60, 0, "waiting for RPM budget ("},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var buf bytes.Buffer
				s := &statusWriter{w: &buf, tty: true, width: func() int { return 200 }}
				logger := slog.New(waitWatcher{slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelInfo}), s})
				l, err := embedder.NewRateLimited(&embeddertest.Fake{}, embedder.RateLimitConfig{RPM: tc.rpm, TPM: tc.tpm, Logger: logger})
				if err != nil {
					t.Fatal(err)
				}
				req := &embedder.Request{Inputs: []embedder.Input{{Text: "x", Tokens: 10}}}
				for range 3 {
					if _, err := l.Embed(t.Context(), req); err != nil {
						t.Fatal(err)
					}
				}
				p := planner.Progress{State: "running", PlannedChunks: 100, EmbeddedChunks: 3, Requests: 3, ElapsedSeconds: 2}
				if got := progressLine(p, s.lastWait(), 199); !strings.Contains(got, tc.want) {
					t.Errorf("progress line %q does not say %q", got, tc.want)
				}
				if strings.Contains(buf.String(), "budget") {
					t.Errorf("the debug line was printed at info level: %q", buf.String())
				}
			})
		})
	}
}

// TestRebuildShowsBudgetWaitInTmux runs a rebuild whose TPM budget holds
// requests back, in a real terminal, and reads the screen: the progress
// line says "waiting for TPM budget" while the limiter holds them.
func TestRebuildShowsBudgetWaitInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install -y tmux)")
	}
	bin := buildReembed(t)
	corpus := smallCorpus(t)
	out := filepath.Join(t.TempDir(), "c")
	// About 30,000 tokens at 10,000 a second: two seconds of waits.
	cmd := fmt.Sprintf("%s rebuild %s --out %s --tpm 600000 --rpm 0 --batch-size 8 --concurrency 4 --progress-interval 50ms", bin, corpus, out)
	saw := false
	watchInTmux(t, 200, cmd, 50*time.Millisecond, time.Minute, func(screen string) {
		for _, line := range strings.Split(screen, "\n") {
			if strings.Contains(line, "chunks  $") && strings.Contains(line, "waiting for TPM budget (") {
				saw = true
			}
		}
	})
	if !saw {
		t.Errorf("the progress line never said it was waiting for the TPM budget")
	}
}
