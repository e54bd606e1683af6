using System.Buffers;
using System.Text;

namespace Apm.Influx;

/// <summary>
/// UTF-8 bytes in a buffer rented from a pool and returned on <see cref="Dispose"/>: a batch of line protocol on its way
/// to InfluxDB without a string and a large-object-heap array per batch. A batch of 5,000 points is about a megabyte;
/// made as a string and then encoded, every batch cost two large objects, and the large object heap's budget then set
/// off a full collection every few seconds in a busy aggregator. Not thread-safe; dispose once the write is done.
/// </summary>
public sealed class PooledUtf8 : IDisposable
{
    /// <summary>Buffers up to 64 MiB, a few per size: the batches being built and written at one time.</summary>
    internal static readonly ArrayPool<byte> Pool = ArrayPool<byte>.Create(64 << 20, 8);

    private byte[]? _buffer;

    private PooledUtf8(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    /// <summary>The number of bytes.</summary>
    public int Length { get; }

    /// <summary>The bytes; only until <see cref="Dispose"/>.</summary>
    public ReadOnlyMemory<byte> Memory => (_buffer ?? throw new ObjectDisposedException(nameof(PooledUtf8))).AsMemory(0, Length);

    /// <summary>Encodes the builder's text chunk by chunk (a surrogate pair split between two chunks stays one character).</summary>
    public static PooledUtf8 Encode(StringBuilder text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var buffer = Pool.Rent(Math.Max(1, Encoding.UTF8.GetMaxByteCount(text.Length)));
        try
        {
            var encoder = Encoding.UTF8.GetEncoder();
            var written = 0;
            foreach (var chunk in text.GetChunks())
            {
                encoder.Convert(chunk.Span, buffer.AsSpan(written), flush: false, out _, out var bytes, out _);
                written += bytes;
            }

            encoder.Convert([], buffer.AsSpan(written), flush: true, out _, out var last, out _);
            return new PooledUtf8(buffer, written + last);
        }
        catch
        {
            Pool.Return(buffer);
            throw;
        }
    }

    /// <summary>Encodes a string (tests and small writes).</summary>
    public static PooledUtf8 Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var buffer = Pool.Rent(Math.Max(1, Encoding.UTF8.GetMaxByteCount(text.Length)));
        return new PooledUtf8(buffer, Encoding.UTF8.GetBytes(text, buffer));
    }

    /// <summary>Returns the buffer to the pool; the bytes are gone.</summary>
    public void Dispose()
    {
        var buffer = Interlocked.Exchange(ref _buffer, null);
        if (buffer is not null) Pool.Return(buffer);
    }
}

/// <summary>A write-only stream into buffers rented from <see cref="PooledUtf8.Pool"/>: the gzip body of a write.</summary>
internal sealed class PooledBufferStream : Stream
{
    private byte[] _buffer;
    private int _length;

    public PooledBufferStream(int capacity) => _buffer = PooledUtf8.Pool.Rent(Math.Max(256, capacity));

    /// <summary>The buffer; the first <see cref="Stream.Length"/> bytes are the content. Valid until the next write or dispose.</summary>
    public byte[] Buffer => _buffer;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => _length;

    public override long Position
    {
        get => _length;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        if (_buffer.Length - _length < buffer.Length)
        {
            var grown = PooledUtf8.Pool.Rent(checked(Math.Max(_length + buffer.Length, _buffer.Length * 2)));
            _buffer.AsSpan(0, _length).CopyTo(grown);
            PooledUtf8.Pool.Return(_buffer);
            _buffer = grown;
        }

        buffer.CopyTo(_buffer.AsSpan(_length));
        _length += buffer.Length;
    }

    public override void WriteByte(byte value) => Write([value]);

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && _buffer.Length > 0)
        {
            PooledUtf8.Pool.Return(_buffer);
            _buffer = [];
        }

        base.Dispose(disposing);
    }
}
