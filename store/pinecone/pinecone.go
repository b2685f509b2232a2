// Package pinecone exports a checkpoint in Pinecone's Parquet import layout
// (https://docs.pinecone.io/guides/index-data/import-data): one directory per
// namespace ("__default__" for the default one) holding Parquet files with
// the columns of a dense index,
//
//	id        STRING        "doc_id#chunk_index" (a sha256 form when longer than 512 bytes)
//	values    LIST<FLOAT>   the embedding
//	metadata  STRING        JSON: doc_id, chunk_index, chunk_sha256, model, embedded_at, text
//
// Upload the directory to S3, GCS or Azure Blob Storage and start an import
// (Pinecone requires the namespace not to exist yet). The export is a
// store.Sink: each checkpoint part becomes one file, written to a temporary
// name and renamed, so a killed export resumes where it stopped.
package pinecone

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parquet-go/parquet-go"

	"github.com/reembed/reembed/store"
)

// MaxMetadataBytes is Pinecone's limit on a record's metadata (40 KB): a
// record whose text would exceed it is exported without the text.
const MaxMetadataBytes = 40 << 10

// MaxIDBytes is Pinecone's limit on a record ID.
const MaxIDBytes = 512

// Record is one row of an import file.
type Record struct {
	ID       string    `parquet:"id"`
	Values   []float32 `parquet:"values,list"`
	Metadata string    `parquet:"metadata"`
}

// Metadata is what each record's metadata JSON holds.
type Metadata struct {
	DocID       string `json:"doc_id"`
	ChunkIndex  int32  `json:"chunk_index"`
	ChunkSHA256 string `json:"chunk_sha256"`
	Model       string `json:"model"`
	EmbeddedAt  string `json:"embedded_at"`
	Text        string `json:"text,omitempty"`
}

// Sink writes import files below Dir/Namespace.
type Sink struct {
	// Dir is the import directory (to be uploaded to object storage).
	Dir string
	// Namespace is the target namespace; "" means "__default__".
	Namespace string
	// NoText leaves the chunk text out of the metadata.
	NoText bool
	// TextDropped counts records whose text was left out to fit MaxMetadataBytes.
	TextDropped int
	// Records counts records written by this run.
	Records int
}

var _ store.Sink = (*Sink)(nil)

func (s *Sink) nsDir() string {
	ns := s.Namespace
	if ns == "" {
		ns = "__default__"
	}
	return filepath.Join(s.Dir, ns)
}

// fileName maps a part ID (checkpoint ID / part name, e.g.
// "0123abcd/shard-0001-of-0004/part-000003.parquet") to a file name,
// reversibly: "/" becomes "__", which part IDs never hold.
func fileName(id string) string { return strings.ReplaceAll(id, "/", "__") }

// Prepare creates the namespace directory, removes unfinished files, and
// returns the parts whose files exist.
func (s *Sink) Prepare(ctx context.Context, t store.Target) (map[string]bool, error) {
	if err := os.MkdirAll(s.nsDir(), 0o755); err != nil {
		return nil, fmt.Errorf("creating the export directory: %w", err)
	}
	entries, err := os.ReadDir(s.nsDir())
	if err != nil {
		return nil, fmt.Errorf("listing the export directory: %w", err)
	}
	have := map[string]bool{}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			os.Remove(filepath.Join(s.nsDir(), e.Name()))
			continue
		}
		have[e.Name()] = true
	}
	// The caller asks by part ID; the directory holds file names.
	loaded := map[string]bool{}
	prefix := fileName(t.CheckpointID + "/")
	for name := range have {
		if strings.HasPrefix(name, prefix) {
			loaded[strings.ReplaceAll(name, "__", "/")] = true
		}
	}
	return loaded, nil
}

// ID returns the Pinecone record ID of a chunk.
func ID(docID string, chunkIndex int32) string {
	id := fmt.Sprintf("%s#%d", docID, chunkIndex)
	if len(id) <= MaxIDBytes {
		return id
	}
	sum := sha256.Sum256([]byte(docID))
	return fmt.Sprintf("sha256:%s#%d", hex.EncodeToString(sum[:]), chunkIndex)
}

// LoadPart writes the part's rows as one import file, atomically.
func (s *Sink) LoadPart(ctx context.Context, p store.Part) error {
	recs := make([]Record, 0, len(p.Rows))
	for _, r := range p.Rows {
		m := Metadata{DocID: r.DocID, ChunkIndex: r.ChunkIndex, ChunkSHA256: r.ChunkSHA256, Model: r.Model,
			EmbeddedAt: r.EmbeddedAt.UTC().Format(time.RFC3339Nano)}
		if !s.NoText {
			m.Text = r.Text
		}
		b, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("encoding metadata of %s: %w", r.Key(), err)
		}
		if len(b) > MaxMetadataBytes {
			m.Text = ""
			s.TextDropped++
			if b, err = json.Marshal(m); err != nil {
				return fmt.Errorf("encoding metadata of %s: %w", r.Key(), err)
			}
		}
		recs = append(recs, Record{ID: ID(r.DocID, r.ChunkIndex), Values: r.Embedding, Metadata: string(b)})
	}
	final := filepath.Join(s.nsDir(), fileName(p.ID))
	tmp, err := os.CreateTemp(s.nsDir(), filepath.Base(final)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating an import file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := parquet.Write(tmp, recs, parquet.Compression(&parquet.Snappy)); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", final, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing %s: %w", final, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", final, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fmt.Errorf("committing %s: %w", final, err)
	}
	s.Records += len(recs)
	return nil
}

// BuildIndex does nothing: Pinecone indexes records as it imports them.
func (s *Sink) BuildIndex(context.Context, store.IndexOptions, func(store.Progress)) error {
	return nil
}

// Publish does nothing: the import is started in Pinecone once the directory is uploaded.
func (s *Sink) Publish(context.Context) error { return nil }
