package httpd

import (
	"errors"
	"io/fs"
	"mime"
	"os"
	"path"
	"strings"
	"syscall"
)

// hidden reports whether name (as parseTarget leaves it) has a segment that
// starts with a dot: .git/, .env, .htpasswd and the like, which a site's
// tree holds but nobody means to publish. /.well-known/ itself (RFC 8615:
// ACME challenges, security.txt) is not hidden; dot names below it are.
func hidden(name string) bool {
	if rest, ok := strings.CutPrefix(name, ".well-known"); ok && (rest == "" || rest[0] == '/') {
		name = rest
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '.' && (i == 0 || name[i-1] == '/') && name != "." {
			return true
		}
	}
	return false
}

// open opens name under the server's os.Root. os.Root is what makes symbolic
// links safe: it follows them only while they stay beneath Root (and never
// when absolute), so a link to /etc fails here instead of after a check that
// could race with a rename.
//
// O_NONBLOCK keeps a FIFO planted under Root from blocking the open forever;
// on regular files and directories it changes nothing.
func (s *Server) open(name string) (*os.File, fs.FileInfo, *httpError) {
	f, err := s.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, openError(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, openError(err)
	}
	return f, fi, nil
}

// openError maps a failed lookup to a status. Everything but a permission
// problem is 404, escapes from Root included: the client learns nothing
// about what lies outside.
func openError(err error) *httpError {
	if errors.Is(err, fs.ErrPermission) {
		return errForbidden
	}
	return errNotFound
}

// contentType picks the Content-Type by extension. mime.TypeByExtension is
// allocation-free for short ASCII extensions, which is what files have.
func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}
