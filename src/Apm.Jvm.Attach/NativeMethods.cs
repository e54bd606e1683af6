using System.Runtime.InteropServices;

namespace Apm.Jvm.Attach;

/// <summary>The two libc calls the handshake needs and .NET does not expose (Process.Kill only sends SIGKILL).</summary>
internal static partial class NativeMethods
{
    internal const int EPERM = 1;
    internal const int ESRCH = 3;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    internal static partial uint GetEffectiveUid();

    private const int ORdOnly = 0;
    private const int OCloExec = 0x80000;
    private const int ONonBlock = 0x800;

    [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static unsafe partial nint Read(int fd, byte* buffer, nint count);

    [LibraryImport("libc", EntryPoint = "close")]
    private static partial int Close(int fd);

    /// <summary>Whether open(2) for reading succeeds: true for a regular file or directory, false for a socket (ENXIO) or nothing.</summary>
    internal static bool OpensAsFile(string path)
    {
        var fd = Open(path, ORdOnly | OCloExec | ONonBlock);
        if (fd < 0) return false;
        _ = Close(fd);
        return true;
    }

    /// <summary>
    /// Reads up to <paramref name="maxBytes"/> of a file without the advisory lock that .NET's FileStream takes:
    /// JDK 17 JVMs hold an exclusive flock on their hsperfdata file, so File.ReadAllBytes fails on it.
    /// Returns null when the file cannot be opened.
    /// </summary>
    internal static unsafe byte[]? ReadFileUnlocked(string path, int maxBytes)
    {
        var fd = Open(path, ORdOnly | OCloExec);
        if (fd < 0) return null;
        try
        {
            var buffer = new byte[maxBytes];
            var total = 0;
            fixed (byte* p = buffer)
            {
                while (total < maxBytes)
                {
                    var n = Read(fd, p + total, maxBytes - total);
                    if (n < 0 && Marshal.GetLastPInvokeError() == 4 /* EINTR */) continue;
                    if (n <= 0) break;
                    total += (int)n;
                }
            }

            return buffer.AsSpan(0, total).ToArray();
        }
        finally
        {
            _ = Close(fd);
        }
    }
}
