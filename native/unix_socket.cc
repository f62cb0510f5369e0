// Unix sockets that carry fds (SCM_RIGHTS), for lib/unix-socket.ts and lib/unix-server.ts.
//
// SOCK_SEQPACKET: each sendmsg is one message, delivered whole with exactly the fds sent with it,
// or not at all (EAGAIN). Every socket fd is O_CLOEXEC|O_NONBLOCK and every call is non-blocking:
// lib/ waits for readiness with the FdWatcher (one per socket fd) and retries.
//
// Ownership: the fds these functions return (sockets, received fds) belong to the caller. An fd
// that arrived in a message the caller cannot take whole (a truncated message or control buffer, or
// more fds than it asked for) is closed here, before JS could lose it; only the count goes back.
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "util.h"

namespace es {

static constexpr int kSocketType = SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK;
// The kernel's limit of fds in one SCM_RIGHTS message (include/net/scm.h: SCM_MAX_FD).
static constexpr uint32_t kScmMaxFd = 253;
// The largest message lib/ may ask for: the kernel's default socket buffer is 208 KiB, and a
// SEQPACKET message must fit in the sender's buffer.
static constexpr uint32_t kMaxMessageBytes = 4u << 20;

// Room for kScmMaxFd fds, aligned for cmsghdr.
union ControlBuffer {
  struct cmsghdr align;
  char bytes[CMSG_SPACE(sizeof(int) * kScmMaxFd)];
};

// A filesystem socket address; TypeScript has checked the path, these are the last guards.
static socklen_t Address(const Napi::CallbackInfo& info, size_t i, sockaddr_un* addr, std::string* path) {
  *path = ArgString(info, i);
  *addr = {};
  if (path->empty() || path->find('\0') != std::string::npos || path->size() >= sizeof(addr->sun_path))
    throw Napi::RangeError::New(info.Env(), "argument " + std::to_string(i) + " must be a socket path of 1..107 bytes");
  addr->sun_family = AF_UNIX;
  memcpy(addr->sun_path, path->data(), path->size());
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path->size() + 1);
}

// Closes fd (which the caller never saw) and throws errno `err` for `syscall`.
[[noreturn]] static void CloseAndThrow(Napi::Env env, int fd, int err, const char* syscall, const std::string& path) {
  close(fd);
  ThrowErrno(env, err, syscall, path.c_str());
}

static int NewSocket(Napi::Env env) {
  int fd = socket(AF_UNIX, kSocketType, 0);
  if (fd == -1) ThrowErrno(env, errno, "socket");
  return fd;
}

// unixSocketPair(): [fd, fd] — two connected sockets; the caller owns both.
static Napi::Value UnixSocketPair(const Napi::CallbackInfo& info) {
  int sv[2];
  if (socketpair(AF_UNIX, kSocketType, 0, sv) == -1) ThrowErrno(info.Env(), errno, "socketpair");
  Napi::Array out = Napi::Array::New(info.Env(), 2);
  out.Set(0u, Napi::Number::New(info.Env(), sv[0]));
  out.Set(1u, Napi::Number::New(info.Env(), sv[1]));
  return out;
}

// unixListen(path: string, backlog: number): fd — socket, bind, listen; the caller owns the fd.
static Napi::Value UnixListen(const Napi::CallbackInfo& info) {
  sockaddr_un addr;
  std::string path;
  socklen_t len = Address(info, 0, &addr, &path);
  int backlog = static_cast<int>(ArgU32(info, 1));
  int fd = NewSocket(info.Env());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == -1) CloseAndThrow(info.Env(), fd, errno, "bind", path);
  if (listen(fd, backlog) == -1) CloseAndThrow(info.Env(), fd, errno, "listen", path);
  return Napi::Number::New(info.Env(), fd);
}

// unixConnect(path: string): fd — connected at once (a Unix connect never waits for the peer to
// accept) or an error: ENOENT, ECONNREFUSED (nobody listens), EAGAIN (its backlog is full).
static Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  sockaddr_un addr;
  std::string path;
  socklen_t len = Address(info, 0, &addr, &path);
  int fd = NewSocket(info.Env());
  int ret;
  do {
    ret = connect(fd, reinterpret_cast<sockaddr*>(&addr), len);
  } while (ret == -1 && errno == EINTR);
  if (ret == -1) CloseAndThrow(info.Env(), fd, errno, "connect", path);
  return Napi::Number::New(info.Env(), fd);
}

// unixAccept(fd): fd, or -1 when no connection is pending. The caller owns the new fd.
static Napi::Value UnixAccept(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  int conn;
  do {
    conn = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    // ECONNABORTED: a client that gave up before we accepted it; look at the next one.
  } while (conn == -1 && (errno == EINTR || errno == ECONNABORTED));
  if (conn == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Number::New(info.Env(), -1);
  if (conn == -1) ThrowErrno(info.Env(), errno, "accept4");
  return Napi::Number::New(info.Env(), conn);
}

// unixSend(fd, data: Uint8Array, fds: number[]): number — bytes sent (the whole message), or -1
// when the socket buffer is full (EAGAIN: wait for writable). MSG_NOSIGNAL: a peer that went away
// is EPIPE, never SIGPIPE. The fds stay the caller's: the kernel sends duplicates.
static Napi::Value UnixSend(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    throw Napi::TypeError::New(env, "argument 1 must be a Uint8Array");
  if (!info[2].IsArray()) throw Napi::TypeError::New(env, "argument 2 must be an array of fds");
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  Napi::Array list = info[2].As<Napi::Array>();
  uint32_t nfds = list.Length();
  if (nfds > kScmMaxFd) throw Napi::RangeError::New(env, "argument 2 must hold at most 253 fds");
  std::vector<int> fds(nfds);
  for (uint32_t i = 0; i < nfds; i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsNumber()) throw Napi::TypeError::New(env, "argument 2 must be an array of fds");
    int32_t n = v.As<Napi::Number>().Int32Value();
    if (n < 0 || v.As<Napi::Number>().DoubleValue() != n) throw Napi::RangeError::New(env, "argument 2 must be an array of fds");
    fds[i] = n;
  }
  iovec iov = {data.Data(), data.ByteLength()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ControlBuffer control;
  if (nfds > 0) {
    memset(&control, 0, sizeof control);
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * nfds);
  }
  ssize_t n;
  do {
    n = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n == -1 && errno == EINTR);
  if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Napi::Number::New(env, -1);
  if (n == -1) ThrowErrno(env, errno, "sendmsg");
  return Napi::Number::New(env, static_cast<double>(n));
}

// unixReceive(fd, maxBytes, maxFds): undefined | null | { data?, fds, flags, bytes, dropped }
//   undefined: nothing to read (EAGAIN); null: end of stream (the peer closed or shut down).
//   A message: data (a Buffer), fds (the caller owns them), flags 0.
//   A message the caller cannot take whole: flags has MSG_TRUNC (more than maxBytes of data; bytes
//   is its real size) and/or MSG_CTRUNC (more fds than the control buffer holds), or fds.length
//   would exceed maxFds (CMSG_SPACE padding can fit one more); then no data and no fds: the fds
//   that arrived were closed here, and `dropped` says how many. The message is consumed.
// MSG_CMSG_CLOEXEC: a received fd is O_CLOEXEC from the moment it exists.
static Napi::Value UnixReceive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgFd(info, 0);
  uint32_t max_bytes = ArgU32(info, 1);
  uint32_t max_fds = ArgU32(info, 2);
  if (max_bytes > kMaxMessageBytes) throw Napi::RangeError::New(env, "argument 1 must be at most 4 MiB");
  if (max_fds > kScmMaxFd) throw Napi::RangeError::New(env, "argument 2 must be at most 253");
  // One scratch buffer per thread (the main thread and each worker), grown on demand.
  thread_local std::vector<char> scratch;
  if (scratch.size() < max_bytes + 1) scratch.resize(max_bytes + 1);
  iovec iov = {scratch.data(), max_bytes};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  ControlBuffer control;
  if (max_fds > 0) {
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * max_fds);
  }
  ssize_t n;
  do {
    // MSG_TRUNC in flags: the return value is the message's real size even when it did not fit.
    n = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT | MSG_TRUNC);
  } while (n == -1 && errno == EINTR);
  if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) return env.Undefined();
  if (n == -1) ThrowErrno(env, errno, "recvmsg");

  std::vector<int> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* p = CMSG_DATA(c);
    for (size_t k = 0; k < count; k++) {
      int received;
      memcpy(&received, p + k * sizeof(int), sizeof(int));
      fds.push_back(received);
    }
  }
  int flags = msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC);
  Napi::Object out = Napi::Object::New(env);
  out.Set("bytes", Napi::Number::New(env, static_cast<double>(n)));
  if (flags != 0 || fds.size() > max_fds) {
    for (int f : fds) close(f);
    out.Set("fds", Napi::Array::New(env, 0));
    out.Set("flags", Napi::Number::New(env, flags));
    out.Set("dropped", Napi::Number::New(env, static_cast<double>(fds.size())));
    return out;
  }
  // A SEQPACKET read of 0 bytes and no fds is the end of the stream (lib/ never sends empty data).
  if (n == 0 && fds.empty()) return env.Null();
  Napi::Array list = Napi::Array::New(env, fds.size());
  for (uint32_t k = 0; k < fds.size(); k++) list.Set(k, Napi::Number::New(env, fds[k]));
  out.Set("data", Napi::Buffer<char>::Copy(env, scratch.data(), static_cast<size_t>(n)));
  out.Set("fds", list);
  out.Set("flags", Napi::Number::New(env, 0));
  out.Set("dropped", Napi::Number::New(env, 0));
  return out;
}

// unixPeerCredentials(fd): { pid, uid, gid } — SO_PEERCRED, as the peer was when it connected.
static Napi::Value UnixPeerCredentials(const Napi::CallbackInfo& info) {
  ucred cred = {};
  socklen_t len = sizeof cred;
  if (getsockopt(ArgFd(info, 0), SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) ThrowErrno(info.Env(), errno, "getsockopt");
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("pid", Napi::Number::New(info.Env(), cred.pid));
  out.Set("uid", Napi::Number::New(info.Env(), cred.uid));
  out.Set("gid", Napi::Number::New(info.Env(), cred.gid));
  return out;
}

// unixSocketType(fd): number — SO_TYPE (SOCK_SEQPACKET, SOCK_STREAM, …); ENOTSOCK for another file.
static Napi::Value UnixSocketType(const Napi::CallbackInfo& info) {
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt(ArgFd(info, 0), SOL_SOCKET, SO_TYPE, &type, &len) == -1) ThrowErrno(info.Env(), errno, "getsockopt");
  return Napi::Number::New(info.Env(), type);
}

void InitUnixSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("unixSocketPair", Napi::Function::New(env, UnixSocketPair, "unixSocketPair"));
  exports.Set("unixListen", Napi::Function::New(env, UnixListen, "unixListen"));
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect, "unixConnect"));
  exports.Set("unixAccept", Napi::Function::New(env, UnixAccept, "unixAccept"));
  exports.Set("unixSend", Napi::Function::New(env, UnixSend, "unixSend"));
  exports.Set("unixReceive", Napi::Function::New(env, UnixReceive, "unixReceive"));
  exports.Set("unixPeerCredentials", Napi::Function::New(env, UnixPeerCredentials, "unixPeerCredentials"));
  exports.Set("unixSocketType", Napi::Function::New(env, UnixSocketType, "unixSocketType"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("SCM_MAX_FD", kScmMaxFd);
  c.Set("MAX_MESSAGE_BYTES", kMaxMessageBytes);
  c.Set("MSG_TRUNC", static_cast<int>(MSG_TRUNC));
  c.Set("MSG_CTRUNC", static_cast<int>(MSG_CTRUNC));
  c.Set("SOCK_SEQPACKET", static_cast<int>(SOCK_SEQPACKET));
  exports.Set("UNIX", c);
}

}  // namespace es
