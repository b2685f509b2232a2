package corpus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/reembed/reembed/corpus"
)

// openFDs counts this process's open file descriptors (Linux: /proc).
func openFDs(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd: cannot count open files here")
	}
	return len(es)
}

// TestScanClosesDirectories: the directories a scan opens to open their
// files in (one openat per file) are all closed when it ends, whether it
// read everything, a worker failed, or it was cancelled half-way.
func TestScanClosesDirectories(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for d := range 40 {
		for f := range 3 {
			files[fmt.Sprintf("d%02d/sub/f%d.txt", d, f)] = fmt.Sprintf("document %d %d", d, f)
		}
	}
	writeTree(t, dir, files)
	boom := errors.New("boom")
	for _, tc := range []struct {
		name     string
		jobs     int
		failAt   int // emit fails at this document
		workFail int // work fails at this document
		cancel   int
		wantErr  error
	}{
		{name: "whole", jobs: 2, failAt: -1, workFail: -1, cancel: -1},
		{name: "emit fails", jobs: 2, failAt: 7, workFail: -1, cancel: -1, wantErr: boom},
		{name: "the only worker fails", jobs: 1, failAt: -1, workFail: 7, cancel: -1, wantErr: boom},
		{name: "cancelled", jobs: 2, failAt: -1, workFail: -1, cancel: 7, wantErr: context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := corpus.Open([]string{dir}, corpus.Options{ReadAhead: 8})
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			before := openFDs(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			n := 0
			var worked atomic.Int32
			st, err := corpus.Scan(ctx, src, tc.jobs, func(d corpus.Document) (string, error) {
				if worked.Add(1) == int32(tc.workFail) {
					return "", boom
				}
				return string(d.Text), nil
			}, func(string) error {
				n++
				if n == tc.failAt {
					return boom
				}
				if n == tc.cancel {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) && !(tc.wantErr == nil && err == nil) {
				t.Fatalf("scan: %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && st.Documents != 120 {
				t.Errorf("read %d documents, want 120", st.Documents)
			}
			if after := openFDs(t); after != before {
				t.Errorf("%d files open before the scan, %d after: directories left open", before, after)
			}
		})
	}
}
