using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using System.Text;

namespace Apm.Hprof.Reader;

/// <summary>
/// An HPROF file mapped into memory read-only. Offsets are longs so files above 4 GiB work. Reads are
/// bounds-checked against the file length and throw <see cref="HprofFormatException"/>; the pointer stays valid
/// until <see cref="Dispose"/>. Thread-safe for concurrent reads.
/// </summary>
public sealed unsafe class HprofFile : IDisposable
{
    private const string Magic = "JAVA PROFILE 1.0.";
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private bool _disposed;

    private System.Runtime.InteropServices.GCHandle _pin;

    private HprofFile(byte[] data)
    {
        Path = "<memory>";
        Length = data.Length;
        if (Length == 0) throw new HprofFormatException(HprofErrorKind.NotHprof, 0, -1, "the file is empty");
        _pin = System.Runtime.InteropServices.GCHandle.Alloc(data, System.Runtime.InteropServices.GCHandleType.Pinned);
        _base = (byte*)_pin.AddrOfPinnedObject();
        try
        {
            (Version, IdSize, TimestampMillis, HeaderLength) = ReadHeader();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private HprofFile(string path)
    {
        Path = path;
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Length = fs.Length;
        if (Length == 0) throw new HprofFormatException(HprofErrorKind.NotHprof, 0, -1, "the file is empty");
        _map = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
        try
        {
            (Version, IdSize, TimestampMillis, HeaderLength) = ReadHeader();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Path the file was opened from.</summary>
    public string Path { get; }

    /// <summary>File length in bytes.</summary>
    public long Length { get; }

    /// <summary>Format string from the header, e.g. "JAVA PROFILE 1.0.2".</summary>
    public string Version { get; }

    /// <summary>Size of object ids: 4 or 8.</summary>
    public int IdSize { get; }

    /// <summary>Dump time from the header, milliseconds since the epoch.</summary>
    public long TimestampMillis { get; }

    /// <summary>Offset of the first record.</summary>
    public long HeaderLength { get; }

    /// <summary>Maps <paramref name="path"/>; throws <see cref="HprofFormatException"/> when the header is not HPROF.</summary>
    public static HprofFile Open(string path) => new(path);

    /// <summary>Reads a dump held in memory (pinned until disposed); for tests and small dumps received over the wire.</summary>
    public static HprofFile FromBytes(byte[] data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new HprofFile(data);
    }

    /// <summary>Throws a truncation error unless <paramref name="count"/> bytes exist at <paramref name="offset"/>.</summary>
    public void Require(long offset, long count, int tag)
    {
        if (offset < 0 || count < 0 || offset > Length - count)
            ThrowTruncated(offset, tag, count);
    }

    /// <summary>Unchecked reads: callers check bounds once per record with <see cref="Require"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte U1(long offset) => _base[offset];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ushort U2(long offset) => BinaryPrimitives.ReadUInt16BigEndian(new ReadOnlySpan<byte>(_base + offset, 2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public uint U4(long offset) => BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(_base + offset, 4));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long U8(long offset) => BinaryPrimitives.ReadInt64BigEndian(new ReadOnlySpan<byte>(_base + offset, 8));

    /// <summary>An object id at <paramref name="offset"/> (4 or 8 bytes), widened to long.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long Id(long offset) => IdSize == 8 ? U8(offset) : U4(offset);

    /// <summary>Reads a value of <paramref name="type"/> as raw bits widened to long.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public long Value(long offset, HprofBasicType type) => type switch
    {
        HprofBasicType.Object => Id(offset),
        HprofBasicType.Boolean or HprofBasicType.Byte => (sbyte)U1(offset),
        HprofBasicType.Char => U2(offset),
        HprofBasicType.Short => (short)U2(offset),
        HprofBasicType.Float or HprofBasicType.Int => (int)U4(offset),
        _ => U8(offset),
    };

    /// <summary>A bounds-checked view of file bytes; valid until the file is disposed.</summary>
    public ReadOnlySpan<byte> Span(long offset, int length)
    {
        Require(offset, length, -1);
        return new ReadOnlySpan<byte>(_base + offset, length);
    }

    /// <summary>
    /// Files up to this size stay mapped whole: <see cref="ReleasePages"/> leaves them alone. Dropping and mapping
    /// again the pages of a 90 MB dump for each pass (scan, references, analyses) cost a few milliseconds of kernel
    /// time each, a large share of a 60 ms triage, while its clean file pages in the resident set are at most this
    /// much, and the kernel can take them back at any time (docs/heap-triage.md).
    /// </summary>
    public const long ResidentWholeBelow = 256L << 20;

    /// <summary>
    /// Tells the kernel this process no longer needs the mapped pages of [<paramref name="from"/>, <paramref name="to"/>)
    /// (madvise MADV_DONTNEED on the whole pages inside the range). The file is read-only and shared, so this only
    /// drops the pages from this process's resident set: they stay in the page cache, and a later read maps them
    /// again. Keeps the resident size of a pass over a dump bounded. No-op for in-memory dumps, for files up to
    /// <see cref="ResidentWholeBelow"/> and off Linux.
    /// </summary>
    public void ReleasePages(long from, long to)
    {
        if (_map == null || _disposed || Length <= ResidentWholeBelow || !OperatingSystem.IsLinux()) return;
        const long page = 4096;
        long start = Math.Max(0, (from + page - 1) & ~(page - 1));
        long end = Math.Min(Length, to) & ~(page - 1);
        if (end <= start) return;
        // The mapping itself may start before the file offset 0 is page-aligned in memory; align the address too.
        long addr = (long)(_base + start);
        long alignedAddr = (addr + page - 1) & ~(page - 1);
        long len = (end - start) - (alignedAddr - addr);
        if (len <= 0) return;
        _ = NativeMethods.Madvise((nint)alignedAddr, (nuint)(len & ~(page - 1)), NativeMethods.MadvDontNeed);
    }

    /// <summary>Decodes modified-UTF-8 text (HPROF strings) at a range.</summary>
    public string Utf8(long offset, int length) => Encoding.UTF8.GetString(Span(offset, length));

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view?.SafeMemoryMappedViewHandle.ReleasePointer();
        _view?.Dispose();
        _map?.Dispose();
        if (_pin.IsAllocated) _pin.Free();
    }

    private static void ThrowTruncated(long offset, int tag, long count) =>
        throw new HprofFormatException(HprofErrorKind.Truncated, offset, tag, FormattableString.Invariant($"needs {count} bytes but the file ends"));

    private (string Version, int IdSize, long Timestamp, long HeaderLength) ReadHeader()
    {
        var probe = (int)Math.Min(Length, 64);
        var head = new ReadOnlySpan<byte>(_base, probe);
        var nul = head.IndexOf((byte)0);
        var magic = Encoding.ASCII.GetBytes(Magic);
        var prefix = Math.Min(probe, magic.Length);
        if (!head[..prefix].SequenceEqual(magic.AsSpan(0, prefix)))
            throw new HprofFormatException(HprofErrorKind.NotHprof, 0, -1, "the file does not start with 'JAVA PROFILE 1.0.'");
        if (nul < 0)
        {
            if (probe < 64) throw new HprofFormatException(HprofErrorKind.Truncated, 0, -1, "the header ends before its version string does");
            throw new HprofFormatException(HprofErrorKind.NotHprof, 0, -1, "the version string is not terminated");
        }

        if (nul < magic.Length + 1) throw new HprofFormatException(HprofErrorKind.NotHprof, 0, -1, "the version string is incomplete");
        var version = Encoding.ASCII.GetString(head[..nul]);
        long pos = nul + 1;
        if (pos + 12 > Length) throw new HprofFormatException(HprofErrorKind.Truncated, pos, -1, "the header ends before the id size and timestamp");
        var idSize = (int)U4(pos);
        if (idSize != 4 && idSize != 8)
            throw new HprofFormatException(HprofErrorKind.Corrupt, pos, -1, FormattableString.Invariant($"identifier size {idSize} is neither 4 nor 8"));
        var ts = ((long)U4(pos + 4) << 32) | U4(pos + 8);
        return (version, idSize, ts, pos + 12);
    }
}

/// <summary>libc calls used to bound the resident set of a mapped dump.</summary>
internal static partial class NativeMethods
{
    public const int MadvDontNeed = 4;

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    public static partial int Madvise(nint addr, nuint length, int advice);
}
