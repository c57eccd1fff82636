@_spi(Testing) import AnnalsStorage

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The crash tests' mode of the `annals` command: with `ANNALS_CRASH_POINT=N` in the
/// environment, the process ends with `_exit(86)` (no cleanup, like `kill -9`) when it reaches
/// its N-th crash point, after printing the point's name to standard error. Without it, nothing
/// is installed.
func installCrashPointsFromEnvironment() {
    guard let value = getenv("ANNALS_CRASH_POINT"), let target = Int(String(cString: value)), target > 0 else { return }
    CrashPoints.install { number, name in
        guard number == target else { return }
        let message = "annals: crash point \(number): \(name)\n"
        _ = message.withCString { write(2, $0, strlen($0)) }
        _exit(CrashPoints.exitStatus)
    }
}
