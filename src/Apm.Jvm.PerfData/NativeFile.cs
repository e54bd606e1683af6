using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Apm.Jvm.PerfData;

/// <summary>
/// Opens a file with open(2) directly. .NET's own FileStream/File.OpenHandle take an advisory flock on Unix,
/// and HotSpot (17.0.x and later) holds an exclusive flock on its hsperfdata file, so .NET's open fails with
/// "being used by another process". A plain open takes no lock, like jstat's reader.
/// </summary>
internal static partial class NativeFile
{
    private const int ReadOnly = 0;
    private const int NonBlocking = 0x800; // a FIFO planted in place of the file must not block the collector
    private const int CloseOnExec = 0x80000;
    private const int ErrNoEntry = 2;
    private const int ErrPermission = 1;
    private const int ErrAccess = 13;
    private const int ErrLoop = 40;

    // O_NOFOLLOW differs by architecture: refuse a symlink planted in another user's hsperfdata directory.
    private static int NoFollow => RuntimeInformation.ProcessArchitecture is Architecture.Arm64 or Architecture.Arm ? 0x8000 : 0x20000;

    /// <summary>Opens <paramref name="path"/> read-only without locking and without following a final symlink.</summary>
    internal static SafeFileHandle OpenReadOnly(string path)
    {
        if (!OperatingSystem.IsLinux())
        {
            // Elsewhere HotSpot's lock does not apply in the same way; use the framework's open.
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        }

        var fd = Open(path, ReadOnly | NonBlocking | CloseOnExec | NoFollow);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            var message = $"cannot open {path}: {Marshal.GetPInvokeErrorMessage(errno)}";
            throw errno switch
            {
                ErrNoEntry => new FileNotFoundException(message, path),
                ErrPermission or ErrAccess => new UnauthorizedAccessException(message),
                ErrLoop => new PerfDataFormatException($"{path} is a symbolic link, not an hsperfdata file"),
                _ => new IOException(message),
            };
        }

        return new SafeFileHandle(fd, ownsHandle: true);
    }

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);
}
