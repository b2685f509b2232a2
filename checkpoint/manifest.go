package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/reembed/reembed/corpus"
	"github.com/reembed/reembed/field"
)

// FormatVersion is the version of the checkpoint layout and row schema this
// package writes. A manifest with a higher version is refused even with Force
// ([ErrUnsupportedFormat]): this code cannot know what changed.
const FormatVersion = 1

// ManifestName is the base name of a directory's manifest.
const ManifestName = "manifest.json"

// ErrManifestMismatch is returned (wrapped in a [*MismatchError]) when an
// existing manifest disagrees with the job on model, dimensions, encoding,
// chunking or plain_text. Resuming would mix incompatible vectors or chunk
// identities. [Options.Force] overrides it for encoding, chunking and
// plain_text, never for model and dimensions ([MismatchError.Forceable]).
var ErrManifestMismatch = errors.New("checkpoint manifest does not match the job")

// ErrUnsupportedFormat is returned when a manifest was written by a newer
// reembed with a higher [FormatVersion]. Force does not override it.
var ErrUnsupportedFormat = errors.New("unsupported checkpoint format version")

// Manifest is the job spec stored as manifest.json in each output directory
// (one per shard), written atomically before the first part.
type Manifest struct {
	// FormatVersion is the layout version ([FormatVersion] when written).
	FormatVersion int `json:"format_version"`
	// Model is the embedding model name, as sent to the provider.
	Model string `json:"model"`
	// Dimensions is the length of every embedding; 0 means the model's default,
	// unchecked.
	Dimensions int `json:"dimensions"`
	// Encoding is the tokenizer encoding that counted tokens and cut chunks
	// (e.g. "cl100k_base").
	Encoding string `json:"encoding"`
	// Chunking is how documents were cut into chunks.
	Chunking Chunking `json:"chunking"`
	// PlainText tells whether markup was stripped before chunking (--plain-text).
	PlainText bool `json:"plain_text"`
	// CorpusRoots are the corpus roots the job read, in order (the order
	// names documents: corpus/roots.go), canonical ([corpus.CanonicalRoot]:
	// absolute, cleaned, symlinks resolved) as seen by the machine that ran
	// the job. This holds for object-storage checkpoints too: a job that
	// runs in a container mounts the corpus at the same path on every run.
	// Commands given no corpus path read these; given other paths, they
	// refuse unless told the corpus changed. Manifests written before roots
	// were canonical may hold relative paths.
	CorpusRoots []string `json:"corpus_roots"`
	// Filters are the corpus filters the job read with (--exclude,
	// --include...), so that resume and verify read the same files.
	Filters corpus.Filters `json:"filters"`
	// Shard is which shard of the job wrote this directory.
	Shard Shard `json:"shard"`
	// CreatedAt is when the manifest was first written, UTC.
	CreatedAt time.Time `json:"created_at"`
	// ReembedVersion is the version of the binary that wrote it, informational.
	ReembedVersion string `json:"reembed_version"`
}

// Chunking is the chunking spec, in tokens of the manifest's encoding.
type Chunking struct {
	// ChunkTokens is the window length in tokens; 0 means one chunk per document.
	ChunkTokens int `json:"chunk_tokens"`
	// ChunkOverlap is the overlap between consecutive windows, in tokens.
	ChunkOverlap int `json:"chunk_overlap"`
}

// MismatchError names the manifest field that differs. It wraps
// [ErrManifestMismatch].
type MismatchError struct {
	// File is the manifest's name in the store.
	File string
	// Field is the JSON name of the field: model, dimensions, encoding,
	// chunking or plain_text.
	Field string
	// Have is the value in the existing manifest, Want the job's.
	Have, Want string
}

// Error names the manifest, the field, both values and the safe ways out.
// A model or dimensions mismatch never suggests --force: a checkpoint never
// mixes models or dimensions.
func (e *MismatchError) Error() string { return e.Render(field.Plain) }

// Render is Error with settings named by name (package field).
func (e *MismatchError) Render(name func(string) string) string {
	if !e.Forceable() { // Field is model or dimensions: a setting of the job too
		return field.Sprintf(name, "checkpoint manifest %s has %s %s, the job wants %s: a checkpoint never mixes models or dimensions; "+
			"write the new vectors to another {out_dir}, or resume this one with {"+e.Field+"} %s",
			e.File, e.Field, e.Have, e.Want, e.Have)
	}
	return field.Sprintf(name, "checkpoint manifest %s has %s %s, the job wants %s (use {force} to embed again every chunk whose text differs, or another {out_dir})",
		e.File, e.Field, e.Have, e.Want)
}

// Forceable reports whether [Options.Force] may override the mismatch: yes
// for encoding, chunking and plain_text (the chunks whose text differs are
// embedded again, the others kept), never for model and dimensions (rows of
// another model or length are never reused).
func (e *MismatchError) Forceable() bool { return e.Field != "model" && e.Field != "dimensions" }

// Unwrap returns [ErrManifestMismatch].
func (e *MismatchError) Unwrap() error { return ErrManifestMismatch }

// Compare checks that an existing manifest (have, read from file) can be
// resumed by a job with spec want. It returns nil, an error wrapping
// [ErrUnsupportedFormat], or a [*MismatchError] wrapping [ErrManifestMismatch]
// for the first differing field in the order model, dimensions, encoding,
// chunking, plain_text. Corpus roots, shard, dates and versions may differ.
func Compare(file string, have, want Manifest) error {
	if have.FormatVersion > FormatVersion {
		return fmt.Errorf("checkpoint manifest %s has format_version %d, this reembed reads up to %d: %w",
			file, have.FormatVersion, FormatVersion, ErrUnsupportedFormat)
	}
	mismatch := func(field string, h, w any) error {
		return &MismatchError{File: file, Field: field, Have: fmt.Sprintf("%v", h), Want: fmt.Sprintf("%v", w)}
	}
	switch {
	case have.Model != want.Model:
		return mismatch("model", quote(have.Model), quote(want.Model))
	case have.Dimensions != want.Dimensions:
		return mismatch("dimensions", have.Dimensions, want.Dimensions)
	case have.Encoding != want.Encoding:
		return mismatch("encoding", quote(have.Encoding), quote(want.Encoding))
	case have.Chunking != want.Chunking:
		return mismatch("chunking", have.Chunking, want.Chunking)
	case have.PlainText != want.PlainText:
		return mismatch("plain_text", have.PlainText, want.PlainText)
	}
	return nil
}

func quote(s string) string { return fmt.Sprintf("%q", s) }

// SameCorpus reports whether two manifests record the same corpus roots (in
// the same order) and filters.
func SameCorpus(a, b Manifest) bool {
	return slices.Equal(a.CorpusRoots, b.CorpusRoots) && a.Filters.Equal(b.Filters)
}

// String formats the chunking as "chunk_tokens=N chunk_overlap=M".
func (c Chunking) String() string {
	return fmt.Sprintf("chunk_tokens=%d chunk_overlap=%d", c.ChunkTokens, c.ChunkOverlap)
}

// encodeManifest returns the manifest as indented JSON with a final newline.
func encodeManifest(m Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// decodeManifest parses a manifest. Unknown fields are ignored (a later
// version of format 1 may add informational ones).
func decodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("decoding manifest: %w", err)
	}
	if m.FormatVersion < 1 {
		return Manifest{}, fmt.Errorf("decoding manifest: missing format_version")
	}
	return m, nil
}
