package corpus

import (
	"errors"
	"fmt"
	"io"
)

// DefaultStreamAbove is the size above which a plain-text document is
// streamed through the chunker ([Chunker.ChunkDocument]) instead of being
// read whole: its text is then held a block at a time, so memory does not
// grow with the document.
const DefaultStreamAbove = 4 << 20

// streamAbove returns the streaming threshold of o.
func (o *Options) streamAbove() int64 {
	if o.StreamAbove == 0 {
		return DefaultStreamAbove
	}
	return o.StreamAbove
}

// docStream is the text of a streamed document: a reader of its source
// bytes (the text rule not yet applied), which can be opened again for a
// second reading (another chunking), and what reading it found.
type docStream struct {
	first  io.Reader // the reader the scan opened, used by the first reading
	reopen func() (io.Reader, func(), error)
	// read, bytes and invalid are set by the first complete reading.
	read    bool
	bytes   int64
	invalid int
}

// open returns a reader of the document's source bytes and a release.
func (s *docStream) open() (io.Reader, func(), error) {
	if s.first != nil {
		r := s.first
		s.first = nil
		return r, func() {}, nil
	}
	if s.reopen == nil {
		return nil, nil, errors.New("a streamed document cannot be read again")
	}
	return s.reopen()
}

// Streamed reports whether the document's text is not held in memory: Text
// is nil, and the text is read (once per call) by [Chunker.ChunkDocument],
// which also sets Bytes and InvalidUTF8. A document is streamed when it is
// larger than Options.StreamAbove.
func (d *Document) Streamed() bool { return d.stream != nil }

// ChunkDocument is [Chunker.Chunk] on the document's text: on Text, or, for
// a streamed document, on its text read in blocks ([Chunker.ChunkReader]),
// in memory that does not grow with the document. Either way the chunks, their
// billed tokens and the document's tokens are the same. After a streamed
// document is read, doc.Bytes and doc.InvalidUTF8 hold what was read.
func (c *Chunker) ChunkDocument(doc *Document, fn ChunkFunc) (docTokens int, split bool, err error) {
	s := doc.stream
	if s == nil {
		return c.Chunk(doc.Text, fn)
	}
	r, release, err := s.open()
	if err != nil {
		return 0, false, fmt.Errorf("opening streamed document %q: %w", doc.ID, err)
	}
	defer release()
	n, split, invalid, bytes, err := c.ChunkReader(r, fn)
	if err != nil {
		if _, ok := errors.AsType[*decodeError](err); ok {
			return n, split, err
		}
		return n, split, fmt.Errorf("reading streamed document %q: %w", doc.ID, err)
	}
	if !s.read {
		s.read, s.bytes, s.invalid = true, bytes, invalid
	}
	doc.Bytes, doc.InvalidUTF8 = s.bytes, s.invalid
	return n, split, nil
}

// streams reports whether a file is read as a streamed document: plain text
// (not HTML, whose extraction needs the whole page), not compressed (a
// compressed file is read whole, within Options.MaxDecompressedBytes), and
// larger than Options.StreamAbove.
func (s *Source) streams(fmtKind format, kind compression, size int64) bool {
	limit := s.opts.streamAbove()
	return fmtKind == formatText && limit >= 0 && size > limit && kind == compressNone
}

// streamedDocument returns the streamed document of a file, read first from
// rd (the scan's reader) and then by opening the file again.
func (s *Source) streamedDocument(ref fileRef, rd io.Reader, size int64) Document {
	reopen := func() (io.Reader, func(), error) {
		f, err := ref.open()
		if err != nil {
			return nil, nil, fmt.Errorf("opening %q again: %w", displayPath(ref.root, ref.rel), err)
		}
		return f, func() { f.Close() }, nil
	}
	return Document{ID: ref.id(), Bytes: size, stream: &docStream{first: rd, reopen: reopen}}
}

// streamCompressed handles a compressed plain-text file whose content is
// longer than the streaming threshold (read bytes of it so far, the rest in
// rd): the rest is decompressed once to check the stream and learn its size
// (a corrupt stream, or one past the decompression cap, is skipped as when
// read whole), then the file is passed on as a streamed document that
// decompresses it again when chunked.
func (s *Source) streamCompressed(ref fileRef, rd io.Reader, read int64, out sink) (*Skip, error) {
	n, err := io.Copy(io.Discard, rd)
	if err != nil {
		if _, ok := errors.AsType[*decodeError](err); ok {
			return nil, err
		}
		return &Skip{Path: displayPath(ref.root, ref.rel), Reason: "cannot read: " + errReason(err)}, nil
	}
	reopen := func() (io.Reader, func(), error) {
		f, err := ref.open()
		if err != nil {
			return nil, nil, fmt.Errorf("opening %q again: %w", displayPath(ref.root, ref.rel), err)
		}
		r, _, _, release, skip := s.openContent(ref, f)
		if skip != nil {
			f.Close()
			return nil, nil, fmt.Errorf("reading %q again: %s", displayPath(ref.root, ref.rel), skip.Reason)
		}
		return r, func() { release(); f.Close() }, nil
	}
	return nil, out.emit(Document{ID: ref.id(), Bytes: read + n, stream: &docStream{reopen: reopen}})
}
