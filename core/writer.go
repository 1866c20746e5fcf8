package session

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
)

// errReplaced is returned to a handler writing a response that the error
// handler has already replaced (saving the session failed).
var errReplaced = errors.New("session: response replaced by the session error handler")

// responseWriter commits the session when the response is committed: the
// first WriteHeader (of a final status), Write, ReadFrom, Flush or Hijack.
// It keeps Flush, Hijack and ReadFrom working, and unwraps for
// http.ResponseController.
type responseWriter struct {
	http.ResponseWriter
	s         *Session
	committed bool
	failed    bool // saving failed: the error handler wrote the response
}

func (w *responseWriter) commit() {
	w.committed = true
	h := w.ResponseWriter.Header()
	if err := w.s.commit(h); err != nil {
		w.failed = true
		// The error response replaces the handler's: drop what described
		// the handler's representation, which would misdescribe this one.
		for _, k := range replacedHeaders {
			delete(h, k)
		}
		w.s.m.cfg.errorHandler(w.ResponseWriter, w.s.req, err)
	}
}

// replacedHeaders describe a response body or point elsewhere; they must
// not survive onto the error handler's response.
var replacedHeaders = []string{
	"Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length", "Content-Location",
	"Content-Range", "Content-Type", "Etag", "Last-Modified", "Location", "Set-Cookie",
}

func (w *responseWriter) WriteHeader(code int) {
	if !w.committed {
		if code >= 100 && code < 200 && code != http.StatusSwitchingProtocols {
			// Informational (103 Early Hints): the real response is still to come.
			w.ResponseWriter.WriteHeader(code)
			return
		}
		w.commit()
	}
	if w.failed {
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if !w.committed {
		w.commit()
	}
	if w.failed {
		return 0, errReplaced
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps sendfile and friends available to io.Copy.
func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.committed {
		w.commit()
	}
	if w.failed {
		return 0, errReplaced
	}
	return io.Copy(w.ResponseWriter, r)
}

// Flush commits and flushes. http.ResponseController finds FlushError.
func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError commits and flushes, reporting whether flushing is supported.
func (w *responseWriter) FlushError() error {
	if !w.committed {
		w.commit()
	}
	if w.failed {
		return errReplaced
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack saves the session first; the cookie cannot ride on a hijacked
// connection, so a session that needs one (a new or regenerated id) will
// not reach the client.
func (w *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if !w.committed {
		w.commit()
	}
	if w.failed {
		return nil, nil, errReplaced
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap gives http.ResponseController access to the wrapped writer's
// deadlines and other extensions.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
