package nic

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ifreqData is struct ifreq with its union as ethtool's data pointer.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // the rest of the union
}

// ethtool issues one SIOCETHTOOL request on ifname whose data is buf: a
// struct from include/uapi/linux/ethtool.h laid out in native byte order,
// command first. The kernel reads and writes buf in place. The callers encode
// and decode buf with encoding/binary, so that this is the only unsafe line
// the ethtool readers need.
func ethtool(ifname string, buf []byte) error {
	if len(ifname) >= unix.IFNAMSIZ {
		return fmt.Errorf("name too long")
	}
	if len(buf) < 4 {
		return fmt.Errorf("ethtool request of %d bytes", len(buf))
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var ifr ifreqData
	copy(ifr.name[:], ifname)
	ifr.data = unsafe.Pointer(&buf[0])
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}
