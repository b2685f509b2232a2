package checkpoint

import (
	"context"
	"io"
)

// SetBlobUploadHook wraps the writer of every upload of b (tests only).
func SetBlobUploadHook(b *Blob, hook func(ctx context.Context, w io.Writer) io.Writer) { b.hook = hook }
