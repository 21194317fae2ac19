// SPDX-License-Identifier: MIT
#include "bench/storm/sandbox.hpp"

#include <dirent.h>
#include <linux/keyctl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace storm {

namespace {

constexpr const char* kRunSystemd = "/run/systemd";
constexpr const char* kRealAskDir = "/run/systemd/ask-password";

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

bool dir_is_empty(const std::string& dir) {
    DIR* d = opendir(dir.c_str());
    if (!d) return false;
    bool empty = true;
    while (dirent* de = readdir(d)) {
        if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) empty = false;
    }
    closedir(d);
    return empty;
}

}  // namespace

std::string enter_sandbox(Sandbox& box, bool& missing) {
    missing = false;
    if (geteuid() != 0) {
        missing = true;
        return "needs root (mount namespace, tmpfs, answering as uid 0)";
    }
    struct stat before {};
    const bool had_real = stat(kRealAskDir, &before) == 0;
    struct stat run_systemd {};
    if (stat(kRunSystemd, &run_systemd) != 0 || !S_ISDIR(run_systemd.st_mode)) {
        missing = true;
        return "/run/systemd does not exist; the harness will not create it on the real /run";
    }
    if (unshare(CLONE_NEWNS) != 0) {
        missing = errno == EPERM || errno == EINVAL;
        return errno_text("unshare(CLONE_NEWNS)");
    }
    // Private propagation first, so that nothing mounted below leaks out.
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return errno_text("making / private");
    if (mount("storm", kRunSystemd, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755,size=256m") != 0) {
        missing = errno == EPERM;
        return errno_text("mounting a tmpfs on /run/systemd");
    }
    if (mkdir(kRealAskDir, 0755) != 0) return errno_text("creating the private ask directory");
    struct stat after {};
    struct statfs fs {};
    if (stat(kRealAskDir, &after) != 0 || statfs(kRealAskDir, &fs) != 0)
        return errno_text("checking the private ask directory");
    // The refusal: the directory we write into must be on our fresh tmpfs,
    // never the machine's own.
    if (fs.f_type != TMPFS_MAGIC || after.st_dev == run_systemd.st_dev ||
        (had_real && after.st_dev == before.st_dev && after.st_ino == before.st_ino) || !dir_is_empty(kRealAskDir))
        return "refusing: the ask directory is not a fresh private tmpfs";
    box.ask_dir = kRealAskDir;
    // Agents keep runtime state (crypt-agent's answered record and cache file) under /run, a
    // tmpfs; on the scratch directory's disk each pwrite cost it an ext4 write that no boot pays.
    box.run_dir = std::string(kRunSystemd) + "/storm-run";
    if (mkdir(box.run_dir.c_str(), 0700) != 0) return errno_text("creating the private run directory");

    // A fresh anonymous session keyring (what `keyctl session -` does): the
    // agents inherit it, and "--keyring session" then never touches root's @u.
    if (syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, nullptr) < 0)
        return errno_text("joining a private session keyring");

    char tmpl[] = "/tmp/storm.XXXXXX";
    if (!mkdtemp(tmpl)) return errno_text("creating a scratch directory");
    box.work_dir = tmpl;
    return {};
}

void raise_fd_limit(unsigned long fds) {
    rlimit cur{};
    getrlimit(RLIMIT_NOFILE, &cur);
    if (cur.rlim_cur >= fds) return;
    rlimit want{fds, std::max<rlim_t>(cur.rlim_max, fds)};
    if (setrlimit(RLIMIT_NOFILE, &want) != 0) {
        want.rlim_cur = cur.rlim_max;
        want.rlim_max = cur.rlim_max;
        setrlimit(RLIMIT_NOFILE, &want);
    }
}

void remove_tree(const std::string& dir) {
    DIR* d = opendir(dir.c_str());
    if (!d) return;
    while (dirent* de = readdir(d)) {
        if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
        (void)unlink((dir + "/" + de->d_name).c_str());
    }
    closedir(d);
    (void)rmdir(dir.c_str());
}

}  // namespace storm
