using System.Globalization;
using System.Runtime.InteropServices;

namespace Apm.Server;

/// <summary>
/// Where a process's resident memory is, beyond the managed heap: anonymous and file-backed resident pages
/// (<c>/proc/self/status</c>) and the C allocator's heap (glibc's <c>mallinfo2</c>: bytes in use and bytes freed but
/// still held), which is where librdkafka and the runtime's native parts allocate. A resident size that rises while the
/// managed live set is flat is in one of these; these counters say which. Linux only; elsewhere every reading is absent.
/// </summary>
public static partial class ProcessMemory
{
    /// <summary>glibc's struct mallinfo2 (2.33 and later): ten size_t fields.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct MallInfo2
    {
        public nuint Arena;     // non-mmapped space allocated from the system
        public nuint Ordblks;   // free chunks
        public nuint Smblks;    // free fastbin blocks
        public nuint Hblks;     // mmapped regions
        public nuint Hblkhd;    // space in mmapped regions
        public nuint Usmblks;   // unused
        public nuint Fsmblks;   // space in freed fastbin blocks
        public nuint Uordblks;  // total allocated space
        public nuint Fordblks;  // total free space
        public nuint Keepcost;  // top-most releasable space
    }

    [LibraryImport("libc", EntryPoint = "mallinfo2")]
    private static partial MallInfo2 NativeMallinfo2();

    [LibraryImport("libc", EntryPoint = "malloc_trim")]
    private static partial int NativeMallocTrim(nuint pad);

    private static int s_mallinfoState; // 0 untried, 1 works, -1 missing (musl, old glibc, not Linux)
    private static int s_trimState; // the same for malloc_trim

    /// <summary>
    /// The C heap: bytes in use (small allocations plus mmapped large ones) and bytes free but still held by the
    /// allocator (fragmentation or arenas not trimmed). Null where glibc's mallinfo2 is not available.
    /// </summary>
    public static (long InUse, long Free)? ReadNativeHeap()
    {
        if (!OperatingSystem.IsLinux() || Volatile.Read(ref s_mallinfoState) < 0) return null;
        try
        {
            var info = NativeMallinfo2();
            Volatile.Write(ref s_mallinfoState, 1);
            return ((long)info.Uordblks + (long)info.Hblkhd, (long)info.Fordblks);
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            Volatile.Write(ref s_mallinfoState, -1);
            return null;
        }
    }

    /// <summary>
    /// Gives the C heap's free pages back to the system (glibc's <c>malloc_trim(0)</c>, which since glibc 2.8 releases
    /// whole free pages inside every arena, not only at the top). False where it is not available or released nothing.
    /// </summary>
    public static bool Trim()
    {
        if (!OperatingSystem.IsLinux() || Volatile.Read(ref s_trimState) < 0) return false;
        try
        {
            var released = NativeMallocTrim(0);
            Volatile.Write(ref s_trimState, 1);
            return released != 0;
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException)
        {
            Volatile.Write(ref s_trimState, -1);
            return false;
        }
    }

    /// <summary>RssAnon and RssFile of /proc/self/status in bytes, or null where that file is missing or unreadable.</summary>
    public static (long Anonymous, long File)? ReadResidentSplit() => ParseResidentSplit(ReadStatus());

    private static string? ReadStatus()
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            return File.ReadAllText("/proc/self/status");
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Parses the "RssAnon:   1234 kB" and "RssFile:" lines; null unless both are there.</summary>
    public static (long Anonymous, long File)? ParseResidentSplit(string? status)
    {
        if (status is null) return null;
        long? anon = null, file = null;
        foreach (var line in status.AsSpan().EnumerateLines())
        {
            if (line.StartsWith("RssAnon:", StringComparison.Ordinal)) anon = Kilobytes(line["RssAnon:".Length..]);
            else if (line.StartsWith("RssFile:", StringComparison.Ordinal)) file = Kilobytes(line["RssFile:".Length..]);
        }

        return anon is { } a && file is { } f ? (a, f) : null;
    }

    private static long? Kilobytes(ReadOnlySpan<char> value)
    {
        value = value.Trim();
        if (value.EndsWith("kB", StringComparison.Ordinal)) value = value[..^2].TrimEnd();
        return long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var kb) ? kb * 1024 : null;
    }
}
