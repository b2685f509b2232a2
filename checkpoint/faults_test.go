package checkpoint

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"slices"
	"testing"
)

var errInjected = errors.New("injected fault")

// TestCommitFaults fails each file step of a commit in turn (kill -9 cannot
// simulate these: the page cache survives it) and checks that the directory
// then holds the old state or the new one, never a half: no temporary file,
// no unreadable part, no rewritten part, and that the writer recovers.
func TestCommitFaults(t *testing.T) {
	t.Parallel()
	oldState := []string{"manifest.json", "part-000001.parquet"}
	newState := []string{"manifest.json", "part-000001.parquet", "part-000002.parquet"}
	tests := []struct {
		step    string
		inject  func(ops *fileOps)
		want    []string // directory after the failed commit
		durable bool     // the error wraps ErrNotDurable: committed
	}{
		{"create", func(o *fileOps) {
			o.createTemp = func(string, string) (*os.File, error) { return nil, errInjected }
		}, oldState, false},
		{"write", func(o *fileOps) {
			o.write = func(*os.File, []byte) (int, error) { return 0, errInjected }
		}, oldState, false},
		{"short write", func(o *fileOps) {
			o.write = func(f *os.File, p []byte) (int, error) { return f.Write(p[:len(p)/2]) }
		}, oldState, false},
		{"sync", func(o *fileOps) {
			o.sync = func(*os.File) error { return errInjected }
		}, oldState, false},
		{"close", func(o *fileOps) {
			o.close = func(f *os.File) error { f.Close(); return errInjected }
		}, oldState, false},
		{"rename", func(o *fileOps) {
			o.rename = func(string, string) error { return errInjected }
		}, oldState, false},
		{"rename and remove", func(o *fileOps) { // the temp file stays until the next Open
			o.rename = func(string, string) error { return errInjected }
			o.remove = func(string) error { return errInjected }
		}, nil, false},
		{"dir sync", func(o *fileOps) {
			o.syncDir = func(string) error { return errInjected }
		}, newState, true},
	}
	for _, tt := range tests {
		t.Run(tt.step, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			root := t.TempDir()
			dir := NewDir(root)
			rows := corpusRows(3, 4, 8) // 12 rows, parts of 4
			w := openWriter(t, dir, Options{Manifest: testManifest(8), PartRows: 4})
			must(t, w.Add(ctx, rows[:4]...))

			saved := dir.ops
			tt.inject(&dir.ops)
			err := w.Add(ctx, rows[4:8]...)
			dir.ops = saved
			if !errors.Is(err, errInjected) && !(tt.step == "short write" && errors.Is(err, io.ErrShortWrite)) {
				t.Fatalf("Add with a failing %s: %v, want the injected error", tt.step, err)
			}
			if got := errors.Is(err, ErrNotDurable); got != tt.durable {
				t.Errorf("errors.Is(err, ErrNotDurable) = %v, want %v", got, tt.durable)
			}
			files := listDir(t, root)
			if tt.want == nil { // old state plus a leftover temporary file
				if len(files) != 3 || classify(files[0]).kind != kindTemp { // TempPrefix sorts first
					t.Fatalf("files %v, want the old state and one temporary file", files)
				}
			} else if !slices.Equal(files, tt.want) {
				t.Fatalf("files %v, want %v", files, tt.want)
			}
			readAllParts(t, root) // every committed part reads
			if tt.durable {
				if w.Buffered() != 0 {
					t.Errorf("a committed part's rows stay buffered (%d): they would be written twice", w.Buffered())
				}
			} else if w.Buffered() != 4 {
				t.Errorf("Buffered = %d after a failed commit, want 4 (kept for the retry)", w.Buffered())
			}

			// The writer carries on: the failed number is not reused.
			must(t, w.Add(ctx, rows[8:]...))
			must(t, w.Close(ctx))
			w = openWriter(t, dir, Options{Manifest: testManifest(8)})
			if tt.want == nil && len(w.Recovery().RemovedTemp) != 1 {
				t.Errorf("Open did not remove the leftover: %+v", w.Recovery())
			}
			parts := readAllParts(t, root)
			if _, ok := parts["part-000002.parquet"]; ok != tt.durable {
				t.Errorf("part-000002 exists = %v, want %v (numbers are never reused)", ok, tt.durable)
			}
			r := w.Index().Coverage(expectedOf(rows))
			if !r.Complete() || r.Duplicates != 0 || r.Present != 12 {
				t.Errorf("final coverage %+v", r)
			}
		})
	}
}

func TestManifestCommitFault(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	dir := NewDir(root)
	dir.ops.rename = func(string, string) error { return errInjected }
	if _, err := Open(ctx, dir, Options{Manifest: testManifest(8)}); !errors.Is(err, errInjected) {
		t.Fatalf("Open: %v, want the injected error", err)
	}
	if files := listDir(t, root); len(files) != 0 {
		t.Errorf("files %v after a failed manifest commit, want none", files)
	}
	dir.ops = osFileOps()
	openWriter(t, dir, Options{Manifest: testManifest(8)})
	if _, err := ReadManifest(ctx, dir, Shard{}); err != nil {
		t.Error(err)
	}
}

func TestRenameRefusesToReplace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	os.WriteFile(root+"/a", []byte("a"), 0o644)
	os.WriteFile(root+"/b", []byte("b"), 0o644)
	if err := NewDir(root).Rename(ctx, "a", "b"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Rename onto an existing file: %v, want ErrExist", err)
	}
	if err := NewDir(root).Remove(ctx, "missing"); err != nil {
		t.Errorf("Remove of a missing file: %v", err)
	}
	if _, err := NewDir(root).Open(ctx, "../etc/passwd"); err == nil {
		t.Error("Open accepted a name outside the root")
	}
}

// TestPipelinedCommit: with Options.Pipeline, Add returns while a part
// commits; the part's rows count as buffered (a crash would lose them) until
// the commit is settled; a failed background commit is reported by the next
// Flush and its rows are committed again, in order, under new numbers.
func TestPipelinedCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	root := t.TempDir()
	dir := NewDir(root)
	rows := corpusRows(3, 4, 8) // 12 rows, parts of 4
	var committed []PartInfo
	w := openWriter(t, dir, Options{Manifest: testManifest(8), PartRows: 4, Pipeline: true,
		OnCommit: func(p PartInfo) { committed = append(committed, p) }})

	reached, release := make(chan struct{}), make(chan struct{})
	syncs := 0
	realSync := dir.ops.sync
	dir.ops.sync = func(f *os.File) error { // the first part's fsync blocks, then fails
		if syncs++; syncs == 1 {
			close(reached)
			<-release
			return errInjected
		}
		return realSync(f)
	}

	must(t, w.Add(ctx, rows[:4]...)) // returns with part 1 committing
	must(t, w.Add(ctx, rows[4:6]...))
	if got := w.Buffered(); got != 6 {
		t.Errorf("Buffered = %d while part 1 commits, want 6 (4 in flight + 2)", got)
	}
	if parts, _ := w.Committed(); parts != 0 || len(committed) != 0 {
		t.Errorf("a part counted committed before its commit finished: %d, %+v", parts, committed)
	}
	<-reached
	if files := listDir(t, root); len(files) != 2 || files[1] != "manifest.json" || classify(files[0]).kind != kindTemp {
		t.Errorf("files %v while part 1 commits, want the manifest and one temporary file", files)
	}

	close(release)
	if err := w.Flush(ctx); !errors.Is(err, errInjected) {
		t.Fatalf("Flush after a failed background commit: %v, want the injected error", err)
	}
	if got := w.Buffered(); got != 6 {
		t.Errorf("Buffered = %d after the failed commit, want 6 (kept for the retry)", got)
	}
	must(t, w.Add(ctx, rows[6:]...))
	must(t, w.Close(ctx))

	parts := readAllParts(t, root)
	if _, ok := parts["part-000001.parquet"]; ok {
		t.Error("the failed part 1 exists")
	}
	for i, name := range []string{"part-000002.parquet", "part-000003.parquet", "part-000004.parquet"} {
		got := parts[name]
		if len(got) != 4 || got[0].Key() != rows[4*i].Key() || got[3].Key() != rows[4*i+3].Key() {
			t.Errorf("%s holds %d rows starting %v, want rows %d..%d in order", name, len(got), got, 4*i, 4*i+3)
		}
	}
	if len(committed) != 3 || committed[0].Number != 2 || committed[2].Number != 4 {
		t.Errorf("OnCommit got %+v, want parts 2, 3, 4", committed)
	}
	if p, r := w.Committed(); p != 3 || r != 12 || w.Buffered() != 0 {
		t.Errorf("Committed = %d parts %d rows, Buffered %d; want 3, 12, 0", p, r, w.Buffered())
	}
}
