package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/reembed/reembed/embedder"
	"github.com/reembed/reembed/planner"
)

// statusWriter is stderr with a status line (a progress bar) kept at the
// bottom when stderr is a terminal: every other write, such as a log line,
// clears the status line, is printed above it, and the status line is drawn
// again. The status line is cut to the terminal's width so that a redraw
// never wraps into a new line.
type statusWriter struct {
	mu     sync.Mutex
	w      io.Writer
	tty    bool
	width  func() int
	status string // as drawn, already cut to the width
	silent bool   // --quiet: no progress
	wait   string // what the rebuild last waited for (a retry, a 429), from the logs
	waitAt time.Time
}

// noteWait records what the rebuild waits for, shown in the progress line
// for a few seconds.
func (s *statusWriter) noteWait(what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.wait, s.waitAt = what, time.Now()
}

// lastWait returns what the rebuild waited for in the last 10 seconds.
func (s *statusWriter) lastWait() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(s.waitAt) > 10*time.Second {
		return ""
	}
	return s.wait
}

// newStatusWriter wraps w; on a terminal it keeps a status line.
func newStatusWriter(w io.Writer) *statusWriter {
	if s, ok := w.(*statusWriter); ok {
		return s
	}
	s := &statusWriter{w: w, width: func() int { return 80 }}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		s.tty = true
		s.width = func() int {
			if c, _, err := term.GetSize(int(f.Fd())); err == nil && c > 0 {
				return c
			}
			return 80
		}
	}
	return s
}

// Write prints p above the status line.
func (s *statusWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status == "" {
		return s.w.Write(p)
	}
	io.WriteString(s.w, "\r\x1b[K")
	n, err := s.w.Write(p)
	if len(p) > 0 && p[len(p)-1] != '\n' {
		io.WriteString(s.w, "\n")
	}
	io.WriteString(s.w, s.status)
	return n, err
}

// SetStatus draws line as the status line, cut to the terminal's width. It
// does nothing when stderr is not a terminal.
func (s *statusWriter) SetStatus(line string) {
	if !s.tty {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = fitWidth(line, s.width()-1)
	io.WriteString(s.w, "\r\x1b[K"+s.status)
}

// EndStatus leaves the last status line on the screen and ends it.
func (s *statusWriter) EndStatus() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != "" {
		io.WriteString(s.w, "\n")
	}
	s.status = ""
}

// ClearStatus removes the status line from the screen.
func (s *statusWriter) ClearStatus() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.status != "" {
		io.WriteString(s.w, "\r\x1b[K")
	}
	s.status = ""
}

// fitWidth cuts line to at most width runes.
func fitWidth(line string, width int) string {
	if width < 1 {
		width = 1
	}
	if utf8.RuneCountInString(line) <= width {
		return line
	}
	r := []rune(line)
	return string(r[:width])
}

// progressPrinter reports a rebuild's progress: a one-line bar on a
// terminal, fitted to its width with the log lines above it, and JSON lines
// otherwise; nothing with --quiet.
func progressPrinter(w io.Writer) func(planner.Progress) {
	s, ok := w.(*statusWriter)
	if ok && s.quiet() {
		return func(planner.Progress) {}
	}
	if !ok || !s.tty {
		enc := json.NewEncoder(w)
		return func(p planner.Progress) {
			enc.Encode(struct {
				Event string `json:"event"`
				planner.Progress
			}{"progress", p})
		}
	}
	return func(p planner.Progress) {
		s.SetStatus(progressLine(p, s.lastWait(), s.width()-1))
		if p.State != "running" {
			s.EndStatus()
		}
	}
}

// quiet reports whether progress is turned off (--quiet).
func (s *statusWriter) quiet() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.silent
}

// progressLine renders p in at most width columns: the bar shrinks first,
// then the less useful fields are dropped.
func progressLine(p planner.Progress, wait string, width int) string {
	frac := 0.0
	if p.PlannedChunks > 0 {
		frac = math.Min(1, float64(p.EmbeddedChunks)/float64(p.PlannedChunks))
	}
	eta := "ETA -"
	if p.ETASeconds != nil {
		eta = "ETA " + humanDuration(time.Duration(*p.ETASeconds)*time.Second)
	}
	fields := []string{
		fmt.Sprintf("%3.0f%%", frac*100),
		fmt.Sprintf("%s/%s chunks", commas(p.EmbeddedChunks), commas(p.PlannedChunks)),
		"$" + p.Cost.String(),
		eta,
		fmt.Sprintf("%s tok/s", commas(int64(p.TokensPerSecond))),
		fmt.Sprintf("%s tokens", commas(p.BilledTokens)),
	}
	if wait == "" {
		wait = waitingFor(p)
	}
	if wait != "" {
		fields = append(fields[:4], append([]string{wait}, fields[4:]...)...)
	}
	text := strings.Join(fields, "  ")
	for utf8.RuneCountInString(text) > width-12 && len(fields) > 2 {
		fields = fields[:len(fields)-1]
		text = strings.Join(fields, "  ")
	}
	barWidth := min(30, width-utf8.RuneCountInString(text)-1)
	if barWidth < 5 {
		return fitWidth(text, width)
	}
	filled := int(frac * float64(barWidth))
	return fitWidth(strings.Repeat("█", filled)+strings.Repeat("░", barWidth-filled)+" "+text, width)
}

// waitingFor says what a rebuild that makes no progress waits for.
func waitingFor(p planner.Progress) string {
	if p.State != "running" {
		return ""
	}
	if p.EmbeddedChunks == 0 && p.Requests == 0 {
		if p.ElapsedSeconds > 2 {
			return "waiting for the first answers (RPM/TPM budget, provider latency)"
		}
		return "starting"
	}
	return ""
}

// waitWatcher is a slog handler that passes records on to the inner handler
// and tells the status line what the rebuild waits for, from the embedder's
// retry and rate-limit records (even those below the log level).
type waitWatcher struct {
	inner  slog.Handler
	status *statusWriter
}

func (h waitWatcher) Enabled(ctx context.Context, l slog.Level) bool {
	return h.status.tty || h.inner.Enabled(ctx, l)
}

func (h waitWatcher) Handle(ctx context.Context, r slog.Record) error {
	if h.status.tty {
		if what := waitFromRecord(r); what != "" {
			h.status.noteWait(what)
		}
	}
	if !h.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h waitWatcher) WithAttrs(as []slog.Attr) slog.Handler {
	return waitWatcher{h.inner.WithAttrs(as), h.status}
}

func (h waitWatcher) WithGroup(name string) slog.Handler {
	return waitWatcher{h.inner.WithGroup(name), h.status}
}

// waitFromRecord describes the wait a log record reports, or "".
func waitFromRecord(r slog.Record) string {
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	switch {
	case r.Message == "retrying embedding batch" && attrs["status"] == "429":
		return "429 rate limited: retrying in " + attrs["wait"]
	case r.Message == "retrying embedding batch":
		return "provider error " + attrs["status"] + ": retrying in " + attrs["wait"]
	case r.Message == embedder.WaitingForTPM || r.Message == embedder.WaitingForRPM:
		return r.Message + " (" + attrs["wait"] + ")"
	case strings.HasPrefix(r.Message, "rate limited"):
		return "429 rate limited: concurrency lowered to " + attrs["to"]
	case strings.Contains(r.Message, "wait"):
		return r.Message
	}
	return ""
}
