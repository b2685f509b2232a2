// Package checkpointtest holds test helpers for [checkpoint.Store]
// implementations: an in-memory store ([Mem]) and the conformance suite
// ([TestStore]) that every store (the local directory, a future
// gocloud.dev/blob one) must pass.
package checkpointtest

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/reembed/reembed/checkpoint"
)

// Mem is an in-memory [checkpoint.Store]. Commit is atomic: the bytes become
// visible only when write returns nil. It is safe for concurrent use.
//
// FailCommit, if set, is called before each commit with the name; a non-nil
// error fails the commit (nothing is stored), as a test hook.
type Mem struct {
	mu    sync.Mutex
	files map[string][]byte

	// FailCommit injects commit failures; nil commits everything.
	FailCommit func(name string) error
}

var _ checkpoint.Store = (*Mem)(nil)

// NewMem returns an empty in-memory store.
func NewMem() *Mem { return &Mem{files: map[string][]byte{}} }

// List returns every file; an empty store lists nothing (it is not missing).
func (m *Mem) List(ctx context.Context) ([]checkpoint.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]checkpoint.FileInfo, 0, len(m.files))
	for name, b := range m.files {
		out = append(out, checkpoint.FileInfo{Name: name, Size: int64(len(b))})
	}
	slices.SortFunc(out, func(a, b checkpoint.FileInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

type memFile struct{ *bytes.Reader }

func (memFile) Close() error { return nil }

// Open returns a reader over a snapshot of the file.
func (m *Mem) Open(ctx context.Context, name string) (checkpoint.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[name]
	if !ok {
		return nil, fmt.Errorf("opening %q: %w", name, fs.ErrNotExist)
	}
	return memFile{bytes.NewReader(b)}, nil
}

// Commit stores what write produces, atomically.
func (m *Mem) Commit(ctx context.Context, name string, write func(io.Writer) error) error {
	if m.FailCommit != nil {
		if err := m.FailCommit(name); err != nil {
			return fmt.Errorf("committing %q: %w", name, err)
		}
	}
	var buf bytes.Buffer
	if err := write(&buf); err != nil {
		return fmt.Errorf("committing %q: %w", name, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = buf.Bytes()
	return nil
}

// Remove deletes a file; a missing one is not an error.
func (m *Mem) Remove(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.files, name)
	return nil
}

// Rename moves a file, refusing to replace one.
func (m *Mem) Rename(ctx context.Context, oldName, newName string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.files[oldName]
	if !ok {
		return fmt.Errorf("renaming %q: %w", oldName, fs.ErrNotExist)
	}
	if _, ok := m.files[newName]; ok {
		return fmt.Errorf("renaming %q to %q: %w", oldName, newName, fs.ErrExist)
	}
	m.files[newName] = b
	delete(m.files, oldName)
	return nil
}

// Put stores raw bytes under name, bypassing Commit (to plant corrupt parts
// or leftovers in tests).
func (m *Mem) Put(name string, b []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.files[name] = slices.Clone(b)
}

// TestStore runs the [checkpoint.Store] contract against fresh stores made by
// newStore (each call must return an empty store).
func TestStore(t *testing.T, newStore func(t *testing.T) checkpoint.Store) {
	ctx := context.Background()
	read, names, commit := readFile, fileNames, commitString
	t.Run("CommitThenRead", func(t *testing.T) {
		s := newStore(t)
		if err := commit(s, "shard-0001-of-0002/part-000001.parquet", "hello"); err != nil {
			t.Fatal(err)
		}
		if got := read(t, s, "shard-0001-of-0002/part-000001.parquet"); got != "hello" {
			t.Errorf("read %q, want hello", got)
		}
		files, err := s.List(ctx)
		if err != nil || len(files) != 1 || files[0].Size != 5 {
			t.Errorf("List = %+v, %v", files, err)
		}
	})
	t.Run("FailedWriteCreatesNothing", func(t *testing.T) {
		s := newStore(t)
		errWrite := errors.New("write failed")
		err := s.Commit(ctx, "part-000001.parquet", func(w io.Writer) error {
			io.WriteString(w, "half")
			return errWrite
		})
		if !errors.Is(err, errWrite) {
			t.Errorf("Commit = %v, want the write error", err)
		}
		if got := names(t, s); len(got) != 0 {
			t.Errorf("files after a failed commit: %v", got)
		}
	})
	t.Run("CommitReplaces", func(t *testing.T) {
		s := newStore(t)
		commit(s, "manifest.json", "one")
		if err := commit(s, "manifest.json", "two"); err != nil {
			t.Fatal(err)
		}
		if got := read(t, s, "manifest.json"); got != "two" {
			t.Errorf("read %q, want two", got)
		}
	})
	t.Run("OpenMissing", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Open(ctx, "part-000001.parquet"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open of a missing file: %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("RemoveIsIdempotent", func(t *testing.T) {
		s := newStore(t)
		commit(s, "a", "x")
		for range 2 {
			if err := s.Remove(ctx, "a"); err != nil {
				t.Errorf("Remove: %v", err)
			}
		}
		if got := names(t, s); len(got) != 0 {
			t.Errorf("files after Remove: %v", got)
		}
	})
	t.Run("RenameRefusesToReplace", func(t *testing.T) {
		s := newStore(t)
		commit(s, "a", "x")
		commit(s, "b", "y")
		if err := s.Rename(ctx, "a", "b"); !errors.Is(err, fs.ErrExist) {
			t.Errorf("Rename onto an existing file: %v, want fs.ErrExist", err)
		}
		if err := s.Rename(ctx, "a", "a.corrupt"); err != nil && !errors.Is(err, checkpoint.ErrNotDurable) {
			t.Fatalf("Rename: %v", err)
		}
		if got, want := names(t, s), []string{"a.corrupt", "b"}; !slices.Equal(got, want) {
			t.Errorf("files %v, want %v", got, want)
		}
		if got := read(t, s, "a.corrupt"); got != "x" {
			t.Errorf("renamed file holds %q", got)
		}
	})
	t.Run("CheckpointRoundTrip", func(t *testing.T) { testCheckpointRoundTrip(t, newStore(t)) })
}

// readFile returns the content of name in s.
func readFile(t *testing.T, s checkpoint.Store, name string) string {
	t.Helper()
	f, err := s.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
	if err != nil {
		t.Fatalf("reading %q: %v", name, err)
	}
	return string(b)
}

// fileNames lists s, sorted.
func fileNames(t *testing.T, s checkpoint.Store) []string {
	t.Helper()
	files, err := s.List(context.Background())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for _, f := range files {
		out = append(out, f.Name)
	}
	slices.Sort(out)
	return out
}

// commitString commits content as name.
func commitString(s checkpoint.Store, name, content string) error {
	return s.Commit(context.Background(), name, func(w io.Writer) error {
		_, err := io.WriteString(w, content)
		return err
	})
}

// testCheckpointRoundTrip writes a shard's checkpoint into s through the
// checkpoint package and scans it back.
func testCheckpointRoundTrip(t *testing.T, s checkpoint.Store) {
	ctx := context.Background()
	m := checkpoint.Manifest{Model: "m", Dimensions: 2, Shard: checkpoint.Shard{Index: 1, Count: 2}}
	w, err := checkpoint.Open(ctx, s, checkpoint.Options{Manifest: m, PartRows: 2})
	if err != nil {
		t.Fatal(err)
	}
	rows := []checkpoint.Row{
		{DocID: "a", ChunkIndex: 0, ChunkSHA256: sha(1), Text: fmt.Sprintf("chunk %d", 1), Model: "m", Embedding: []float32{1, 2}, EmbeddedAt: epoch},
		{DocID: "a", ChunkIndex: 1, ChunkSHA256: sha(2), Text: fmt.Sprintf("chunk %d", 2), Model: "m", Embedding: []float32{3, 4}, EmbeddedAt: epoch},
		{DocID: "b", ChunkIndex: 0, ChunkSHA256: sha(3), Text: fmt.Sprintf("chunk %d", 3), Model: "m", Embedding: []float32{5, 6}, EmbeddedAt: epoch},
	}
	if err := w.Add(ctx, rows...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
	ix, err := checkpoint.Scan(ctx, s, checkpoint.ScanOptions{Deep: true})
	if err != nil {
		t.Fatal(err)
	}
	if ix.Len() != 3 || len(ix.Parts()) != 2 || !ix.Has(checkpoint.Key{DocID: "b"}, sha(3)) {
		t.Errorf("index: %d keys, parts %+v", ix.Len(), ix.Parts())
	}
	want := []string{"shard-0001-of-0002/manifest.json", "shard-0001-of-0002/part-000001.parquet", "shard-0001-of-0002/part-000002.parquet"}
	if got := fileNames(t, s); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func sha(n int) string {
	s := sha256.Sum256(fmt.Appendf(nil, "chunk %d", n))
	return hex.EncodeToString(s[:])
}
