// Package corpus reads the documents of a corpus and cuts them into chunks of
// tokens: directory walking, the format readers (plain text, Markdown, HTML,
// JSONL, CSV, Parquet), reembed's one text rule ([ToValidUTF8]) and the
// chunker. Token counting lives in the subpackage tokenizer.
//
// It imports nothing of ours except corpus/tokenizer.
package corpus

import "errors"

// ErrOutsideRoot is returned when a path resolves outside its corpus root.
var ErrOutsideRoot = errors.New("path is outside the corpus root")

// ErrCorpusPath is wrapped by [Open]'s errors for corpus paths that cannot
// be used together.
var ErrCorpusPath = errors.New("unusable corpus paths")

// ErrSkipped is wrapped by the error returned in strict mode when a file had
// to be skipped.
var ErrSkipped = errors.New("file skipped")

// Document is one unit of text: a file, or one record of a JSONL, CSV or
// Parquet file.
type Document struct {
	// ID is the document's identity: the path relative to the corpus root with
	// '/' separators, followed by "#" and the record's id for record formats.
	ID string
	// Text is the document's text after the UTF-8 rule: always valid UTF-8.
	Text []byte
	// Bytes is the size of the document's source bytes.
	Bytes int64
	// InvalidUTF8 is the number of invalid sequences replaced by U+FFFD.
	InvalidUTF8 int

	// stream, when not nil, is a large document's text, read by
	// Chunker.ChunkDocument instead of Text (streamdoc.go).
	stream *docStream
}

// Skip records a file that was not read, and why.
type Skip struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}
