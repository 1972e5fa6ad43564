package httpd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The cache follows Root through inotify: a file edited, added or removed
// beneath it is served fresh within a second, without a Reload. A watch on
// every directory the cache walks (inotify is not recursive) reports the
// names that change; the watcher's goroutine loads each one once it has
// had no event for watchQuiet, and publishes a copy of the snapshot with
// those names replaced, as Reload publishes a whole new one.
//
// The cache never holds a torn file. A load waits until no writer holds
// the file open: IN_MODIFY starts a write, IN_CLOSE_WRITE ends it, and
// meanwhile a cached file keeps its previous version (a new file is left
// to the disk, as it was before watching). This tells a writer's pause
// from its end, which the size and times of a file cannot (see loadFile).
// It is why this is inotify itself and not fsnotify: fsnotify v1.10.1
// reports a write but keeps the close of a writer unexported
// (xUnportableCloseWrite). A file closed by its writer is cached at once;
// one found some other way (in a new directory, or past writeHold) must
// have been left alone for settleTime first, as without watching. A write
// that lands while the file is read makes the load stale: events are read
// again after the loads and a file with a new one keeps its old version
// until its next turn.
//
// What watching cannot see is left to Reload (SIGHUP), as before: a
// directory that could not be watched (fs.inotify.max_user_watches, logged
// once), changes made on another host of a network file system (logged
// once at start), files written through mmap, and a link's target beneath
// a hidden directory. When the event queue overflows, the whole cache is
// loaded again.

// Timing. A name is loaded once it has had no event for watchQuiet and no
// writer holds it open; the goroutine looks at what is due every watchTick
// while anything is pending. writeHold bounds how long a cached file keeps
// its previous version while a writer holds it open (a log appended to for
// good, say): past it the file is served from disk until it has been left
// alone for settleTime. Variables so that tests can shorten them.
var (
	watchQuiet = 100 * time.Millisecond
	watchTick  = 50 * time.Millisecond
	writeHold  = 5 * time.Second
)

// The system calls that fail where inotify is missing or exhausted; tests
// replace them.
var (
	inotifyInit     = func() (int, error) { return unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK) }
	inotifyAddWatch = unix.InotifyAddWatch
	fsType          = func(path string) (int64, error) {
		var st unix.Statfs_t
		err := unix.Statfs(path, &st)
		return int64(st.Type), err
	}
)

// remoteFS names the file systems whose files other hosts change without
// this kernel, and so without inotify, knowing.
var remoteFS = map[int64]string{
	unix.NFS_SUPER_MAGIC:   "nfs",
	unix.SMB_SUPER_MAGIC:   "smb",
	unix.CIFS_SUPER_MAGIC:  "cifs",
	unix.SMB2_SUPER_MAGIC:  "smb2",
	unix.FUSE_SUPER_MAGIC:  "fuse",
	unix.V9FS_MAGIC:        "9p",
	unix.CEPH_SUPER_MAGIC:  "ceph",
	unix.AFS_FS_MAGIC:      "afs",
	unix.AFS_SUPER_MAGIC:   "afs",
	unix.CODA_SUPER_MAGIC:  "coda",
	unix.XENFS_SUPER_MAGIC: "xenfs",
}

// watchMask: what changes a name's contents or existence. IN_DONT_FOLLOW
// and IN_ONLYDIR: the cache walks no directory through a link, so the
// watcher watches none. IN_EXCL_UNLINK: writes to a file already removed
// (an editor's swap file) are no one's business.
const watchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_ATTRIB |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DONT_FOLLOW | unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK

var errRootMoved = errors.New("the path no longer leads to the directory served (root renamed?)")

type watcher struct {
	s       *Server
	path    string // Root's absolute path, links resolved: inotify_add_watch takes only a path
	f       *os.File
	rc      syscall.RawConn
	done    chan struct{}
	started bool
	closing atomic.Bool

	// Shared with Reload, which adds watches and asks what writers hold.
	mu      sync.Mutex
	wds     map[int32]string // watch descriptor → directory beneath Root
	byName  map[string]int32
	writing map[string]bool // files written to and not yet closed, within writeHold
	logged  map[string]bool // warnings given once

	// The goroutine's own.
	pending map[string]*change
	moves   map[uint32]time.Time // a move's cookie → the write in progress on the name it left
	resync  time.Time            // events were lost: a full load is due then
	buf     []byte
}

// change is what the watcher knows of one name with events not yet loaded.
type change struct {
	last      time.Time // the latest event
	writing   time.Time // when a write began that no close has ended yet; zero if none
	settle    bool      // no close was seen: the file must be left alone for settleTime
	notBefore time.Time // a file left out as fresh: when to look again
}

// watchRoot makes the watcher, or logs once why the cache will follow Root
// only on Reload, and returns nil.
func (s *Server) watchRoot() *watcher {
	w, err := newWatcher(s)
	if err != nil {
		s.log.Warn("not following changes under root; SIGHUP reloads the cache", "root", s.cfg.Root, "err", err)
		return nil
	}
	return w
}

func newWatcher(s *Server) (*watcher, error) {
	path, err := filepath.Abs(s.cfg.Root)
	if err == nil {
		path, err = filepath.EvalSymlinks(path)
	}
	if err != nil {
		return nil, err
	}
	fd, err := inotifyInit()
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	f := os.NewFile(uintptr(fd), "inotify")
	rc, err := f.SyscallConn()
	if err == nil {
		err = f.SetReadDeadline(time.Time{}) // fails if the runtime cannot poll it
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if t, err := fsType(path); err == nil && remoteFS[t] != "" {
		s.log.Warn("root is on a network file system: changes made by other hosts are not noticed; SIGHUP reloads the cache",
			"root", s.cfg.Root, "fs", remoteFS[t])
	}
	return &watcher{
		s: s, path: path, f: f, rc: rc, done: make(chan struct{}),
		wds: map[int32]string{}, byName: map[string]int32{}, writing: map[string]bool{}, logged: map[string]bool{},
		pending: map[string]*change{}, moves: map[uint32]time.Time{},
		buf: make([]byte, 64<<10),
	}, nil
}

// start runs the goroutine, once the first load has added the watches.
func (w *watcher) start() {
	if w == nil {
		return
	}
	w.started = true
	go w.run()
}

// close stops the goroutine and waits for it: after close the watcher
// touches neither Root nor the cache.
func (w *watcher) close() {
	if w == nil || w.closing.Swap(true) {
		return
	}
	w.f.Close() // wakes the goroutine's read
	if w.started {
		<-w.done
	}
}

func (w *watcher) run() {
	defer close(w.done)
	var next time.Time // when to look at what is pending; zero while nothing is
	for {
		if next.IsZero() && (len(w.pending) > 0 || !w.resync.IsZero()) {
			next = time.Now().Add(watchTick)
		}
		w.f.SetReadDeadline(next)
		if _, err := w.read(true); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			if !w.closing.Load() {
				w.s.log.Warn("stopped following changes under root; SIGHUP reloads the cache", "err", err)
			}
			return
		}
		if !next.IsZero() && !time.Now().Before(next) {
			next = time.Time{}
			w.process()
		}
	}
}

// read reads one batch of events and notes them; without block it returns
// 0 at once when there are none.
func (w *watcher) read(block bool) (int, error) {
	var n int
	var rerr error
	err := w.rc.Read(func(fd uintptr) bool {
		for {
			n, rerr = unix.Read(int(fd), w.buf)
			if rerr != unix.EINTR {
				break
			}
		}
		return rerr != unix.EAGAIN || !block
	})
	switch {
	case err != nil:
		return 0, err
	case rerr == unix.EAGAIN:
		return 0, nil
	case rerr != nil:
		return 0, rerr
	}
	w.parse(w.buf[:n], time.Now())
	return n, nil
}

// drain notes every event queued by now.
func (w *watcher) drain() {
	w.f.SetReadDeadline(time.Time{})
	for {
		if n, err := w.read(false); err != nil || n == 0 {
			return
		}
	}
}

func (w *watcher) parse(b []byte, now time.Time) {
	for len(b) >= unix.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(b[0:]))
		mask := binary.NativeEndian.Uint32(b[4:])
		cookie := binary.NativeEndian.Uint32(b[8:])
		n := int(binary.NativeEndian.Uint32(b[12:]))
		if unix.SizeofInotifyEvent+n > len(b) {
			return // the kernel writes whole events; this does not happen
		}
		name := b[unix.SizeofInotifyEvent : unix.SizeofInotifyEvent+n]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		w.event(wd, mask, cookie, string(name), now)
		b = b[unix.SizeofInotifyEvent+n:]
	}
}

func (w *watcher) event(wd int32, mask, cookie uint32, name string, now time.Time) {
	if mask&unix.IN_Q_OVERFLOW != 0 {
		w.resync = now.Add(watchQuiet)
		w.warnOnce("overflow", "inotify events were lost (queue overflow); loading the whole cache again",
			"max_queued_events", sysctl("fs/inotify/max_queued_events"))
		return
	}
	w.mu.Lock()
	dir, ok := w.wds[wd]
	if ok && mask&unix.IN_IGNORED != 0 {
		// The directory was removed or unmounted, or its watch dropped.
		delete(w.wds, wd)
		if w.byName[dir] == wd {
			delete(w.byName, dir)
		}
	}
	w.mu.Unlock()
	if !ok || mask&unix.IN_IGNORED != 0 || name == "" {
		if ok && dir == "." && mask&unix.IN_IGNORED != 0 {
			w.warnOnce("root", "root's watch went away (removed or unmounted?): not following changes under it; SIGHUP reloads the cache")
		}
		return
	}
	rel := name
	if dir != "." {
		rel = dir + "/" + name
	}
	if !w.s.cfg.ServeDotFiles && hidden(rel) {
		return
	}
	c := w.pending[rel]
	if c == nil {
		c = &change{}
		w.pending[rel] = c
	}
	c.last = now
	if mask&unix.IN_MODIFY != 0 && c.writing.IsZero() {
		c.writing = now
		w.setWriting(rel, true)
	}
	if mask&unix.IN_MOVED_FROM != 0 {
		// A file renamed while written to is still being written.
		w.moves[cookie] = c.writing
		c.writing = time.Time{}
		w.setWriting(rel, false)
	}
	if mask&unix.IN_MOVED_TO != 0 {
		c.writing, c.settle = w.moves[cookie], false
		delete(w.moves, cookie)
		w.setWriting(rel, !c.writing.IsZero())
	}
	if mask&(unix.IN_CLOSE_WRITE|unix.IN_DELETE) != 0 {
		c.writing, c.settle = time.Time{}, false
		w.setWriting(rel, false)
	}
}

// watchOp replaces name (a file, or a directory's tree) in the cache with
// part; a nil part removes it.
type watchOp struct {
	name string
	part *snapshot
}

// process loads the names that are due and publishes the result.
func (w *watcher) process() {
	s := w.s
	now := time.Now()
	clear(w.moves) // a move's two halves come together
	if !w.resync.IsZero() {
		if now.Before(w.resync) {
			return
		}
		w.resync = time.Time{}
		for name, c := range w.pending {
			if c.writing.IsZero() {
				delete(w.pending, name) // the full load covers it
			}
		}
		if err := s.reload(true, slog.LevelDebug); err != nil && !s.inShutdown.Load() {
			s.log.Warn("cache reload", "err", err)
		}
		return
	}
	cur := s.cache.Load()
	var ops []watchOp
	var fresh []string
	due := map[string]bool{}
	for name, c := range w.pending {
		if !c.writing.IsZero() {
			if now.Sub(c.writing) < writeHold {
				continue // the previous version stays until the writer closes
			}
			// Held open too long: from disk until it settles.
			c.writing, c.settle = time.Time{}, true
			w.setWriting(name, false)
			ops = append(ops, watchOp{name: name})
			continue
		}
		if now.Sub(c.last) < watchQuiet || now.Before(c.notBefore) {
			continue
		}
		delete(w.pending, name)
		due[name] = true
		op, f := w.load(cur, name, !c.settle)
		ops, fresh = append(ops, op), append(fresh, f...)
	}
	if len(ops) > 0 {
		// A link's target may have changed under its own name (the loader
		// keeps a link's version while its target is held open).
		for name := range cur.links {
			e := cur.files[name]
			if due[name] || e == nil {
				continue
			}
			if fi, err := s.root.Stat(name); err == nil && stampOf(fi).unchanged(e.stamp) {
				continue
			}
			op, f := w.load(cur, name, false)
			ops, fresh = append(ops, op), append(fresh, f...)
		}
	}
	if len(ops) == 0 {
		return
	}
	// A file written to since it was read keeps its old version (or none)
	// until its next turn: the read may have caught a writer's first half.
	w.drain()
	kept := ops[:0]
	for _, op := range ops {
		if op.part == nil || w.pending[op.name] == nil {
			kept = append(kept, op)
		}
	}
	for _, name := range fresh {
		if w.pending[name] == nil {
			w.pending[name] = &change{last: now, settle: true, notBefore: now.Add(settleTime)}
		}
	}
	if len(kept) == 0 {
		return
	}
	s.reloadMu.Lock()
	next := s.cache.Load().clone()
	for _, op := range kept {
		next.remove(op.name)
		if op.part != nil {
			next.merge(op.part, s.cfg.CacheTotal)
		}
	}
	next.skipped = len(next.left)
	s.cache.Store(next)
	s.reloadMu.Unlock()
	s.log.Debug("cache updated", "names", len(kept), "files", len(next.files), "bytes", next.bytes, "skipped", next.skipped)
}

// load reads name as it is now: a file, a directory's tree (watched as it
// is walked), or nothing. closed says the file's last writer closed it. It
// returns the files left out as fresh.
func (w *watcher) load(cur *snapshot, name string, closed bool) (watchOp, []string) {
	s := w.s
	fi, err := s.root.Lstat(name)
	if err != nil || (cur.dirs[name] && !fi.IsDir()) {
		w.unwatch(name)
	}
	if err != nil {
		return watchOp{name: name}, nil
	}
	l := s.loader(cur)
	part := newSnapshot()
	if fi.IsDir() {
		// Nothing is known of the writers of what a walk finds.
		if err := l.walk(part, name); err != nil {
			return watchOp{name: name}, nil
		}
		return watchOp{name: name, part: part}, l.fresh
	}
	l.closed = closed
	l.file(part, name, fi.Mode().Type())
	return watchOp{name: name, part: part}, l.fresh
}

// add watches the directory name; the loader calls it for every directory
// it walks, before reading it.
func (w *watcher) add(name string) {
	p := w.path
	if name != "." {
		p = filepath.Join(w.path, name)
	}
	var wd int
	var err error
	if w.rc.Control(func(fd uintptr) { wd, err = inotifyAddWatch(int(fd), p, watchMask) }) != nil {
		return // closed
	}
	if err == nil && !w.same(p, name) {
		w.rc.Control(func(fd uintptr) { unix.InotifyRmWatch(int(fd), uint32(wd)) })
		err = errRootMoved
	}
	if err != nil {
		w.failed(name, err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.wds[int32(wd)]; ok && old != name && w.byName[old] == int32(wd) {
		delete(w.byName, old) // moved: the same directory, watched under its new name
	}
	w.wds[int32(wd)] = name
	w.byName[name] = int32(wd)
}

// same reports whether path is still the directory that Root calls name:
// Root is held open, and a renamed root must not make the watcher watch
// whatever now lives at its old path.
func (w *watcher) same(path, name string) bool {
	a, err := os.Lstat(path)
	if err != nil {
		return true // gone: its parent's event says so
	}
	b, err := w.s.root.Lstat(name)
	if err != nil {
		return true
	}
	return os.SameFile(a, b)
}

func (w *watcher) failed(name string, err error) {
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		// Gone or replaced meanwhile: its parent's event brings it back.
	case errors.Is(err, unix.ENOSPC):
		w.warnOnce("limit", "inotify watch limit reached: changes in directories not watched are seen only on SIGHUP (raise fs.inotify.max_user_watches, then SIGHUP)",
			"dir", name, "max_user_watches", sysctl("fs/inotify/max_user_watches"))
	case name == ".":
		w.warnOnce("root", "cannot watch root: not following changes under it; SIGHUP reloads the cache", "err", err)
	default:
		w.warnOnce("dir", "cannot watch a directory: changes beneath it are seen only on SIGHUP", "dir", name, "err", err)
	}
}

// unwatch drops the watches on dir and beneath it: gone, or moved away
// (a move within Root watches it again under its new name).
func (w *watcher) unwatch(dir string) {
	prefix := dir + "/"
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, wd := range w.byName {
		if name == dir || strings.HasPrefix(name, prefix) {
			w.rc.Control(func(fd uintptr) { unix.InotifyRmWatch(int(fd), uint32(wd)) })
			delete(w.byName, name)
			delete(w.wds, wd)
		}
	}
}

// held reports whether a writer has name open or, for a link, the file it
// leads to: the loader then keeps the version it has.
func (w *watcher) held(name string, link bool) bool {
	w.mu.Lock()
	if w.writing[name] || !link || len(w.writing) == 0 {
		defer w.mu.Unlock()
		return w.writing[name]
	}
	names := slices.Collect(maps.Keys(w.writing))
	w.mu.Unlock()
	fi, err := w.s.root.Stat(name)
	if err != nil {
		return false
	}
	for _, n := range names {
		if hf, err := w.s.root.Stat(n); err == nil && os.SameFile(fi, hf) {
			return true
		}
	}
	return false
}

func (w *watcher) setWriting(name string, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if on {
		w.writing[name] = true
	} else {
		delete(w.writing, name)
	}
}

// warnOnce logs msg the first time kind happens in the watcher's life.
func (w *watcher) warnOnce(kind, msg string, args ...any) {
	w.mu.Lock()
	first := !w.logged[kind]
	w.logged[kind] = true
	w.mu.Unlock()
	if first {
		w.s.log.Warn(msg, args...)
	}
}

// watched reports how many directories are watched now.
func (w *watcher) watched() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.byName)
}

func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
