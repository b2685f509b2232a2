package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestReadProgressLine checks the figures of estimate's read progress
// (files, MB, documents, tokens, ETA) as files start and documents are
// counted, that it fits 80 and 200 columns keeping files, MB, tokens and the
// ETA, and that End clears it.
func TestReadProgressLine(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"a.txt": 1_500_000, "sub/b.txt": 500_000} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte("x"), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	s := &statusWriter{w: &buf, tty: true, width: func() int { return 200 }}
	p := startReadProgress(&env{stderr: s}, []string{dir})
	if p == nil {
		t.Fatal("no read progress on a terminal")
	}
	keep := p.keep(nil)
	if !keep("a.txt") || !keep("a.txt") {
		t.Fatal("the progress filter dropped a document")
	}
	fmt.Fprintf(p.perDocument(nil), "doc_id\ttokens\tchunks\tbilled_tokens\na.txt\t1234567\t3\t1234567\n")
	line := p.line(199)
	for _, want := range []string{"reading: 1/2 files", "1.5/2.0 MB", "1 document ", "1,234,567 tokens", "ETA "} {
		if !strings.Contains(line, want) {
			t.Errorf("line %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "ETA -") {
		t.Errorf("line %q has no ETA after 1.5 MB were read", line)
	}
	short := p.line(79)
	for _, want := range []string{"files", "MB", "tokens", "ETA "} {
		if !strings.Contains(short, want) || utf8.RuneCountInString(short) > 79 {
			t.Errorf("at 80 columns: %q (%d runes) lacks %q", short, utf8.RuneCountInString(short), want)
		}
	}
	p.End()
	if got := buf.String(); !strings.HasPrefix(got, "\r\x1b[Kreading: ") || !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("the terminal got %q: want a line drawn at once and cleared at the end", got)
	}
}

// TestEstimateProgressInTmux runs estimate in a real terminal (tmux) at 80
// and 200 columns on a corpus that takes a while to read, and reads the
// screen while it runs: one "reading:" line with files, MB, tokens and an
// ETA, within the width; when the table is printed, the line is gone.
//
// The read must not end before the first redraw (200 ms), whatever the
// machine's speed: when the line is on the screen without an ETA yet, the
// test stops the process (SIGSTOP) for longer than a redraw, lets it run
// for a moment (the pending redraw is drawn first) and stops it again while
// it reads the screen.
func TestEstimateProgressInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed (apt-get install -y tmux)")
	}
	bin := buildReembed(t)
	corpus := wordsCorpus(t, 300, 20000) // about 39 MB: about a second at --jobs 1 on 2 cores
	progress := regexp.MustCompile(`^reading: [0-9,]+/300 files  [0-9.]+/[0-9.]+ MB  .*[0-9,]+ tokens  ETA [0-9]`)
	for _, width := range []int{80, 200} {
		t.Run(fmt.Sprint(width), func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pid")
			signal := func(sig string) {
				if pid, err := os.ReadFile(pidFile); err == nil {
					exec.Command("kill", "-"+sig, strings.TrimSpace(string(pid))).Run()
				}
			}
			cmd := fmt.Sprintf("sh -c 'echo $$ > %s; exec %s estimate %s --jobs 1'", pidFile, bin, corpus)
			saw, frozen, pauses := false, false, 0
			screen := watchInTmux(t, width, cmd, 10*time.Millisecond, time.Minute, func(screen string) {
				lines := 0
				for _, line := range strings.Split(screen, "\n") {
					if !strings.HasPrefix(line, "reading:") {
						continue
					}
					lines++
					if n := utf8.RuneCountInString(line); n >= width {
						t.Errorf("a %d-column progress line at width %d: %q", n, width, line)
					}
					saw = saw || progress.MatchString(line)
				}
				if lines > 1 {
					t.Errorf("%d progress lines on the screen, want 1:\n%s", lines, screen)
				}
				switch {
				case frozen:
					signal("CONT")
					frozen = false
				case !saw && lines == 1 && pauses < 10:
					pauses++
					signal("STOP")
					time.Sleep(300 * time.Millisecond)
					signal("CONT")
					time.Sleep(20 * time.Millisecond)
					signal("STOP")
					frozen = true
				}
			})
			if !saw {
				t.Errorf("never saw a progress line with files, MB, tokens and an ETA while estimate read (%d pauses)", pauses)
			}
			if strings.Contains(screen, "reading:") || !strings.Contains(screen, "300 files") {
				t.Errorf("after the read, want the report and no progress line:\n%s", screen)
			}
		})
	}
}

// wordsCorpus writes files of words random words each into a new
// directory: text that tokenizes like prose, not like one repeated token.
func wordsCorpus(t *testing.T, files, words int) string {
	t.Helper()
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, 5000)
	for i := range vocab {
		b := make([]byte, 2+r.IntN(8))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		vocab[i] = string(b)
	}
	var sb strings.Builder
	for f := range files {
		sb.Reset()
		for range words {
			sb.WriteString(vocab[r.IntN(len(vocab))])
			sb.WriteByte(' ')
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.txt", f)), []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
