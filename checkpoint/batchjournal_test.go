package checkpoint

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBatchJournalDurableAndReopened: the journal keeps its checkpoint
// identity, each batch's state and its request file across a reopen; a
// crash's temporary files are removed; and the checkpoint's writer and
// index ignore the journal directory.
func TestBatchJournalDurableAndReopened(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	store := NewDir(root)
	for _, s := range []Shard{{}, {Index: 1, Count: 2}} {
		j, err := OpenJournal(t.Context(), store, s)
		if err != nil {
			t.Fatal(err)
		}
		id := j.ID()
		b := &JournalBatch{Key: j.NextKey(), Tokens: 7, Inputs: 1,
			Requests: []JournalRequest{{CustomID: "b000001-r000001", Chunks: []JournalChunk{{DocID: "a.txt", SHA256: "ab", Tokens: 7}}}}}
		if err := j.Plan(t.Context(), b, []byte("{\"custom_id\":\"x\"}\n")); err != nil {
			t.Fatal(err)
		}
		if err := j.Plan(t.Context(), &JournalBatch{Key: "b000009"}, nil); err == nil {
			t.Error("Plan accepted a key out of order")
		}
		b.State, b.BatchID = JournalCreating, "batch-1"
		if err := j.Save(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, filepath.FromSlash(j.dir))
		if err := os.WriteFile(filepath.Join(dir, "b000002.json.tmp-123"), []byte("{"), 0o644); err != nil {
			t.Fatal(err)
		}
		j2, err := OpenJournal(t.Context(), store, s)
		if err != nil {
			t.Fatal(err)
		}
		if j2.ID() != id || len(j2.Batches()) != 1 || j2.NextKey() != "b000002" || len(j2.RemovedTemp()) != 1 {
			t.Fatalf("reopened: id %s (want %s), %d batches, next %s, removed %v", j2.ID(), id, len(j2.Batches()), j2.NextKey(), j2.RemovedTemp())
		}
		got := j2.Batches()[0]
		if got.State != JournalCreating || got.BatchID != "batch-1" || got.CheckpointID != id || got.Requests[0].Chunks[0].DocID != "a.txt" {
			t.Errorf("reopened batch %+v", got)
		}
		if rf, err := j2.RequestFile(t.Context(), got.Key); err != nil || string(rf) != "{\"custom_id\":\"x\"}\n" {
			t.Errorf("request file %q %v", rf, err)
		}
	}
	w, err := Open(t.Context(), store, Options{Manifest: testManifest(4)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Add(t.Context(), makeRow("d", 0, 1, 4)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	ix, err := Scan(t.Context(), store, ScanOptions{})
	if err != nil || ix.Len() != 1 || len(ix.Unreadable()) != 0 {
		t.Fatalf("scan with a journal: %d keys, unreadable %v, %v", ix.Len(), ix.Unreadable(), err)
	}
}
