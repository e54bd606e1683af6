using System.Buffers;

namespace Apm.Dashboard.Live;

/// <summary>
/// One serialized Server-Sent Event (its name and UTF-8 JSON), shared by every listener it was posted to. Its buffer
/// comes from a pool of the dashboard's own and goes back when the last listener has released it (sent, dropped as
/// stale, or left unsent when the browser went away). A fleet event of 2,500 JVMs is about 0.6 MB: allocated per
/// poll it went straight to the large-object heap, one large object every poll.
/// </summary>
public sealed class LiveEvent
{
    /// <summary>
    /// The events' buffers. Not <see cref="ArrayPool{T}.Shared"/>: that pool keeps a buffer per thread, and large ones
    /// rented on pool threads can be lost with them. Sixteen buffers of up to 16 MB at most are kept.
    /// </summary>
    private static readonly ArrayPool<byte> Pool = ArrayPool<byte>.Create(16 * 1024 * 1024, 16);

    private byte[]? _buffer;
    private readonly int _length;
    private int _references;

    private LiveEvent(string name, byte[] buffer, int length, int references)
    {
        Name = name;
        _buffer = buffer;
        _length = length;
        _references = references;
    }

    /// <summary>The event's name ("fleet", "jvm", "error").</summary>
    public string Name { get; }

    /// <summary>The event's JSON: valid until this holder's <see cref="Release"/>.</summary>
    public ReadOnlyMemory<byte> Data => _buffer is { } b ? b.AsMemory(0, _length) : throw new ObjectDisposedException(nameof(LiveEvent));

    /// <summary>A copy of <paramref name="json"/> in a pooled buffer, held by <paramref name="references"/> listeners.</summary>
    public static LiveEvent Copy(string name, ReadOnlySpan<byte> json, int references)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(references, 1);
        var buffer = Pool.Rent(Math.Max(1, json.Length));
        json.CopyTo(buffer);
        return new LiveEvent(name, buffer, json.Length, references);
    }

    /// <summary>One listener is done with the event; the last returns its buffer. A release too many throws.</summary>
    public void Release()
    {
        var left = Interlocked.Decrement(ref _references);
        if (left > 0) return;
        if (left < 0) throw new InvalidOperationException("the event was released more times than it was posted");
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null) Pool.Return(buffer);
    }
}
