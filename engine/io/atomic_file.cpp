#include "engine/io/atomic_file.hpp"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include "graphrun/error.hpp"

namespace graphrun::io {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

// Owns the temporary file until it has been renamed over the target; removes it otherwise.
class TempFile {
public:
    TempFile(const std::string& target) : target_(target) {
        // A per-process counter keeps two writers in one process apart; O_EXCL
        // keeps us from writing into a file someone else is writing.
        static std::atomic<unsigned> counter{0};
        for (int attempt = 0; attempt < 100; ++attempt) {
            path_ = fmt::format("{}.tmp.{}.{}", target, ::getpid(), counter++);
            fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
            if (fd_ >= 0 || errno != EEXIST) break;
        }
        if (fd_ < 0)
            throw Error(fmt::format("{}: cannot create the temporary file {}: {}", target_, path_, errno_text(errno)));
    }
    ~TempFile() {
        if (fd_ >= 0) ::close(fd_);
        if (!renamed_) ::unlink(path_.c_str());
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;

    void write(std::span<const std::byte> bytes) {
        const std::byte* p = bytes.data();
        std::size_t left = bytes.size();
        while (left > 0) {
            const ssize_t n = ::write(fd_, p, left);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw Error(fmt::format("{}: cannot write to {}: {}", target_, path_, errno_text(errno)));
            p += n;
            left -= static_cast<std::size_t>(n);
        }
    }

    void commit() {
        if (::fsync(fd_) != 0) throw Error(fmt::format("{}: cannot fsync {}: {}", target_, path_, errno_text(errno)));
        // close() can report a delayed write error (NFS, quotas): check it.
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0) throw Error(fmt::format("{}: cannot close {}: {}", target_, path_, errno_text(errno)));
        if (::rename(path_.c_str(), target_.c_str()) != 0)
            throw Error(fmt::format("{}: cannot rename {} over it: {}", target_, path_, errno_text(errno)));
        renamed_ = true;
    }

private:
    std::string target_;
    std::string path_;
    int fd_ = -1;
    bool renamed_ = false;
};

void fsync_folder_of(const std::string& path) {
    const std::filesystem::path parent = std::filesystem::path(path).parent_path();
    const std::string folder = parent.empty() ? std::string(".") : parent.string();
    const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) throw Error(fmt::format("{}: cannot open its folder {} to fsync it: {}", path, folder, errno_text(errno)));
    // Some file systems cannot fsync a folder (EINVAL); the rename is then as durable as they allow.
    const int rc = ::fsync(fd);
    const int err = errno;
    ::close(fd);
    if (rc != 0 && err != EINVAL) throw Error(fmt::format("{}: cannot fsync its folder {}: {}", path, folder, errno_text(err)));
}

}  // namespace

void write_file_atomically(const std::string& path, const std::function<void(const ByteSink& write)>& produce) {
    {
        TempFile temp(path);
        produce([&temp](std::span<const std::byte> bytes) { temp.write(bytes); });
        temp.commit();
    }
    fsync_folder_of(path);
}

void write_file_atomically(const std::string& path, std::span<const std::byte> bytes) {
    write_file_atomically(path, [bytes](const ByteSink& write) { write(bytes); });
}

}  // namespace graphrun::io
