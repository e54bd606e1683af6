using System.IO.MemoryMappedFiles;
using Microsoft.Win32.SafeHandles;

namespace Apm.Jvm.PerfData;

/// <summary>
/// One JVM's hsperfdata file, memory-mapped read-only and kept open between samples. Reading never stops
/// the JVM (no safepoint, no attach): it copies the used bytes out of the shared mapping and parses the copy,
/// so a JVM writing concurrently cannot make a bounds check stale. Not thread-safe: one reader per instance.
/// </summary>
public sealed unsafe class PerfDataFile : IDisposable
{
    /// <summary>Files larger than this are refused (HotSpot's default is 32 KiB; -XX:PerfDataMemorySize rarely passes 1 MiB).</summary>
    public const long MaxFileBytes = 64L * 1024 * 1024;

    /// <summary>How long <see cref="Read()"/> waits for a starting JVM to set the accessible flag.</summary>
    public static readonly TimeSpan DefaultAccessibleWait = TimeSpan.FromMilliseconds(100);

    private readonly SafeFileHandle _handle;
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly long _capacity;
    private byte* _pointer;
    private PerfDataLayout? _layout;

    private PerfDataFile(string path, SafeFileHandle handle, MemoryMappedFile map, MemoryMappedViewAccessor view, long capacity)
    {
        Path = path;
        _handle = handle;
        _map = map;
        _view = view;
        _capacity = capacity;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pointer = p + view.PointerOffset;
    }

    /// <summary>The file this instance maps.</summary>
    public string Path { get; }

    /// <summary>Size of the mapping in bytes.</summary>
    public long Capacity => _capacity;

    /// <summary>
    /// Opens and maps <paramref name="path"/> read-only, sharing it with the JVM (which may write or delete it).
    /// Costs a few system calls; keep the instance and call <see cref="Read()"/> per sample. Throws
    /// <see cref="PerfDataFormatException"/> for a file too small or too large to be hsperfdata, and the usual
    /// IOException/UnauthorizedAccessException when it cannot be opened.
    /// </summary>
    public static PerfDataFile Open(string path)
    {
        var handle = NativeFile.OpenReadOnly(path);
        MemoryMappedFile? map = null;
        try
        {
            if ((File.GetAttributes(handle) & FileAttributes.Directory) != 0)
            {
                throw new PerfDataFormatException($"{path} is a directory, not an hsperfdata file");
            }

            // FIFOs and devices report 0 bytes and end here too.
            var length = RandomAccess.GetLength(handle);
            if (length < PerfDataLayout.PrologueSize)
            {
                throw new PerfDataFormatException($"truncated: {length} bytes, the prologue needs {PerfDataLayout.PrologueSize}");
            }

            if (length > MaxFileBytes) throw new PerfDataFormatException($"file of {length} bytes is larger than the {MaxFileBytes} byte limit");
            map = MemoryMappedFile.CreateFromFile(handle, null, length, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: true);
            var view = map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
            return new PerfDataFile(path, handle, map, view, length);
        }
        catch
        {
            map?.Dispose();
            handle.Dispose();
            throw;
        }
    }

    /// <summary>Reads a snapshot, waiting up to <see cref="DefaultAccessibleWait"/> for a starting JVM.</summary>
    public PerfDataSnapshot Read() => Read(DefaultAccessibleWait);

    /// <summary>
    /// Reads a snapshot. Steady-state cost: one fstat and a copy of the non-constant values (about 2 KiB) into
    /// a new array; names and constants come from the layout validated when the JVM last added counters (then
    /// the used bytes are copied and every entry is checked again). Polls every 10 ms up to <paramref name="waitForAccessible"/> while the accessible flag
    /// is clear, then throws <see cref="PerfDataNotAccessibleException"/>. Malformed content throws
    /// <see cref="PerfDataFormatException"/>.
    /// </summary>
    public PerfDataSnapshot Read(TimeSpan waitForAccessible)
    {
        ObjectDisposedException.ThrowIf(_pointer == null, this);

        // Mapped pages beyond the end of a file that shrank raise SIGBUS: refuse to touch them.
        var length = RandomAccess.GetLength(_handle);
        if (length < _capacity) throw new PerfDataFormatException($"file shrank from {_capacity} to {length} bytes");

        var deadline = Environment.TickCount64 + (long)waitForAccessible.TotalMilliseconds;
        Span<byte> prologue = stackalloc byte[PerfDataLayout.PrologueSize];
        PerfDataHeader header;
        while (true)
        {
            new ReadOnlySpan<byte>(_pointer, PerfDataLayout.PrologueSize).CopyTo(prologue);
            try
            {
                header = PerfDataLayout.ReadHeader(prologue, _capacity);
                break;
            }
            catch (PerfDataNotAccessibleException) when (Environment.TickCount64 < deadline)
            {
                Thread.Sleep(10);
            }
        }

        // The prologue was copied before the entries: HotSpot writes an entry before it publishes the new
        // used/num_entries, so every entry the copied prologue counts is complete when read afterwards.
        Interlocked.MemoryBarrier();
        var layout = _layout;
        if (layout is null || !layout.Matches(header))
        {
            // Validate a private copy, so that a concurrent writer cannot change what was checked.
            var data = GC.AllocateUninitializedArray<byte>(header.Used);
            prologue.CopyTo(data);
            new ReadOnlySpan<byte>(_pointer + PerfDataLayout.PrologueSize, header.Used - PerfDataLayout.PrologueSize)
                .CopyTo(data.AsSpan(PerfDataLayout.PrologueSize));
            layout = PerfDataLayout.Build(data, header);
            _layout = layout;
            return new PerfDataSnapshot(layout.CopyValues(data), layout, header, _capacity);
        }

        // Steady state: the offsets were validated against the used bytes, which lie inside the mapping.
        return new PerfDataSnapshot(layout.CopyValues(new ReadOnlySpan<byte>(_pointer, header.Used)), layout, header, _capacity);
    }

    /// <summary>
    /// A copy of the whole mapped file, unparsed (for diagnostics, fuzzing and as a benchmark baseline). Plain
    /// File.ReadAllBytes fails on a live JVM's file because .NET takes an advisory lock that HotSpot holds.
    /// </summary>
    public byte[] ReadRawBytes()
    {
        ObjectDisposedException.ThrowIf(_pointer == null, this);
        var length = RandomAccess.GetLength(_handle);
        if (length < _capacity) throw new PerfDataFormatException($"file shrank from {_capacity} to {length} bytes");
        return new ReadOnlySpan<byte>(_pointer, checked((int)_capacity)).ToArray();
    }

    /// <summary>Unmaps the file and closes its handle.</summary>
    public void Dispose()
    {
        if (_pointer == null) return;
        _pointer = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
        _handle.Dispose();
    }
}
