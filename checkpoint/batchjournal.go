package checkpoint

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// JournalDirName is the directory, inside a shard's directory, that holds the
// batch journal of a rebuild in batch mode: "id.json" (the checkpoint's
// identity, which tags every batch), and per batch KEY "KEY.jsonl" (the
// request file exactly as uploaded) and "KEY.json" (its [JournalBatch]). The
// checkpoint's readers ignore the directory.
const JournalDirName = "batch-journal"

// Journal states of a batch, in order. Each is committed durably before the
// network call that moves the batch on, so that a process killed at any
// moment knows, on restart, what it may have created:
//   - JournalPlanned: the request file is committed; nothing uploaded yet;
//   - JournalUploaded: the file is uploaded (FileID);
//   - JournalCreating: a batch may have been created: on restart, look it up
//     by its metadata before creating one;
//   - JournalSubmitted: the batch exists (BatchID);
//   - JournalIngested: its output and errors are committed to parts and every
//     custom_id reconciled; what is missing goes to a later wave or to sync.
const (
	JournalPlanned   = "planned"
	JournalUploaded  = "uploaded"
	JournalCreating  = "creating"
	JournalSubmitted = "submitted"
	JournalIngested  = "ingested"
)

// JournalChunk is one chunk of a batch request.
type JournalChunk struct {
	DocID      string `json:"doc_id"`
	ChunkIndex int32  `json:"chunk_index"`
	SHA256     string `json:"chunk_sha256"`
	Tokens     int32  `json:"tokens"`
}

// JournalRequest maps a custom_id to its chunks, in the order of the
// request's inputs.
type JournalRequest struct {
	CustomID string         `json:"custom_id"`
	Chunks   []JournalChunk `json:"chunks"`
}

// JournalBatch is the journal of one provider batch.
type JournalBatch struct {
	Key          string `json:"key"`
	CheckpointID string `json:"checkpoint_id"`
	Wave         int    `json:"wave"`
	State        string `json:"state"`
	FileID       string `json:"file_id,omitempty"`
	BatchID      string `json:"batch_id,omitempty"`
	// Status is the provider's last seen status; OutputFileID and
	// ErrorFileID its result files.
	Status       string `json:"status,omitempty"`
	OutputFileID string `json:"output_file_id,omitempty"`
	ErrorFileID  string `json:"error_file_id,omitempty"`
	// Tokens and Inputs are what the request file asks for.
	Tokens int64 `json:"tokens"`
	Inputs int   `json:"inputs"`
	// Billed is the batch's usage as the provider reported it; Completed,
	// Failed and Missing count its custom_ids after reconciliation.
	Billed    int64            `json:"billed_tokens"`
	Completed int              `json:"completed"`
	Failed    int              `json:"failed"`
	Missing   int              `json:"missing"`
	Errors    []string         `json:"errors,omitempty"`
	Requests  []JournalRequest `json:"requests"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// Journal is a shard's batch journal in a [Store]. It is not safe for
// concurrent use.
type Journal struct {
	store   Store
	dir     string
	id      string
	batches []*JournalBatch
	removed []string
}

// OpenJournal reads the batch journal of shard s, creating the checkpoint's
// identity on first use, and removes temporary files a crash left in it.
func OpenJournal(ctx context.Context, store Store, s Shard) (*Journal, error) {
	j := &Journal{store: store, dir: partPath(ShardDir(s), JournalDirName)}
	files, err := store.List(ctx)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening the batch journal: %w", err)
	}
	for _, f := range files {
		dir, base := path.Split(f.Name)
		if strings.TrimSuffix(dir, "/") != j.dir {
			continue
		}
		switch {
		case strings.Contains(base, ".tmp"):
			if err := store.Remove(ctx, f.Name); err != nil {
				return nil, fmt.Errorf("opening the batch journal: removing %s: %w", f.Name, err)
			}
			j.removed = append(j.removed, f.Name)
		case base == "id.json":
			var v struct {
				ID string `json:"checkpoint_id"`
			}
			if err := j.readJSON(ctx, f.Name, &v); err != nil {
				return nil, err
			}
			j.id = v.ID
		case strings.HasSuffix(base, ".json"):
			var b JournalBatch
			if err := j.readJSON(ctx, f.Name, &b); err != nil {
				return nil, err
			}
			j.batches = append(j.batches, &b)
		}
	}
	slices.SortFunc(j.batches, func(a, b *JournalBatch) int { return strings.Compare(a.Key, b.Key) })
	if j.id == "" {
		var raw [12]byte
		_, _ = rand.Read(raw[:])
		j.id = "ck-" + hex.EncodeToString(raw[:])
		if err := j.commitJSON(ctx, "id.json", map[string]string{"checkpoint_id": j.id}); err != nil {
			return nil, err
		}
	}
	return j, nil
}

func (j *Journal) readJSON(ctx context.Context, name string, v any) error {
	f, err := j.store.Open(ctx, name)
	if err != nil {
		return fmt.Errorf("reading batch journal %s: %w", name, err)
	}
	defer f.Close()
	if err := json.NewDecoder(io.NewSectionReader(f, 0, f.Size())).Decode(v); err != nil {
		return fmt.Errorf("decoding batch journal %s: %w", name, err)
	}
	return nil
}

func (j *Journal) name(base string) string { return partPath(j.dir, base) }

func (j *Journal) commitJSON(ctx context.Context, base string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding batch journal %s: %w", base, err)
	}
	err = j.store.Commit(ctx, j.name(base), func(w io.Writer) error { _, err := w.Write(b); return err })
	if err != nil && !errors.Is(err, ErrNotDurable) {
		return fmt.Errorf("committing batch journal %s: %w", base, err)
	}
	return nil
}

// ID is the checkpoint's identity, which tags its batches' metadata.
func (j *Journal) ID() string { return j.id }

// RemovedTemp lists the temporary files OpenJournal removed.
func (j *Journal) RemovedTemp() []string { return j.removed }

// Batches returns the journaled batches in key order.
func (j *Journal) Batches() []*JournalBatch { return j.batches }

// NextKey is the key of the next batch: "b000001", "b000002", ...
func (j *Journal) NextKey() string { return fmt.Sprintf("b%06d", len(j.batches)+1) }

// Plan commits a new batch's request file, then its journal entry in state
// JournalPlanned. A crash between the two leaves a request file with no
// entry, which the next Plan of the same key replaces.
func (j *Journal) Plan(ctx context.Context, b *JournalBatch, requestFile []byte) error {
	if b.Key == "" || b.Key != j.NextKey() {
		return fmt.Errorf("planning batch %q: want key %s", b.Key, j.NextKey())
	}
	err := j.store.Commit(ctx, j.name(b.Key+".jsonl"), func(w io.Writer) error { _, err := w.Write(requestFile); return err })
	if err != nil && !errors.Is(err, ErrNotDurable) {
		return fmt.Errorf("committing the request file of batch %s: %w", b.Key, err)
	}
	b.CheckpointID, b.State = j.id, JournalPlanned
	if err := j.Save(ctx, b); err != nil {
		return err
	}
	j.batches = append(j.batches, b)
	return nil
}

// Save commits b's journal entry durably.
func (j *Journal) Save(ctx context.Context, b *JournalBatch) error {
	b.UpdatedAt = time.Now().UTC()
	return j.commitJSON(ctx, b.Key+".json", b)
}

// RequestFile reads back the request file of batch key, byte for byte.
func (j *Journal) RequestFile(ctx context.Context, key string) ([]byte, error) {
	f, err := j.store.Open(ctx, j.name(key+".jsonl"))
	if err != nil {
		return nil, fmt.Errorf("reading the request file of batch %s: %w", key, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.NewSectionReader(f, 0, f.Size())); err != nil {
		return nil, fmt.Errorf("reading the request file of batch %s: %w", key, err)
	}
	return buf.Bytes(), nil
}

// DropRequestFile removes an ingested batch's request file (its texts are in
// the parts now, or go to another batch).
func (j *Journal) DropRequestFile(ctx context.Context, key string) error {
	if err := j.store.Remove(ctx, j.name(key+".jsonl")); err != nil {
		return fmt.Errorf("removing the request file of batch %s: %w", key, err)
	}
	return nil
}
