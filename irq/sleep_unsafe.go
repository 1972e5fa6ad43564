package irq

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// pollNow is poll(2) with a zero timeout, made as a raw syscall: it never
// blocks, and a syscall the runtime knows of would wake sysmon. ts must be
// zero; the kernel writes the time left (zero) back into it.
func pollNow(fds []unix.PollFd, ts *unix.Timespec) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), uintptr(len(fds)),
		uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	return int(n), errno
}
