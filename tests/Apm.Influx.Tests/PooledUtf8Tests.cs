using System.IO.Compression;
using System.Text;
using Apm.Influx;

namespace Apm.Influx.Tests;

/// <summary>The pooled UTF-8 batch and the pooled gzip body, against .NET's own encoder and decompressor.</summary>
public sealed class PooledUtf8Tests
{
    [Fact]
    public void A_builder_of_many_chunks_encodes_exactly_as_its_string_does_with_surrogates_split_between_chunks()
    {
        var random = new Random(7);
        string[] pieces = ["cpu,host=a value=1 ", "é", "😀", "\u4e2d", "\\ ", "x", "\n"];
        for (var round = 0; round < 200; round++)
        {
            // Appending piece by piece makes chunks; a char-by-char append of a pair can end a chunk between its halves.
            var sb = new StringBuilder(16);
            var target = random.Next(0, 20_000);
            while (sb.Length < target)
            {
                var piece = pieces[random.Next(pieces.Length)];
                foreach (var c in piece) sb.Append(c);
            }

            using var utf8 = PooledUtf8.Encode(sb);
            Assert.Equal(Encoding.UTF8.GetBytes(sb.ToString()), utf8.Memory.ToArray());
        }
    }

    [Fact]
    public void A_split_pair_at_a_chunk_boundary_stays_one_character()
    {
        var sb = new StringBuilder(3);
        sb.Append("ab");
        sb.Append('\ud83d'); // the first chunk holds 3 chars, so the low half starts the next chunk
        sb.Append('\ude00');
        sb.Append("cd");
        Assert.True(CountChunks(sb) >= 2);
        using var utf8 = PooledUtf8.Encode(sb);
        Assert.Equal("ab😀cd", Encoding.UTF8.GetString(utf8.Memory.Span));
    }

    [Fact]
    public void Disposed_bytes_are_gone_and_disposing_twice_is_harmless()
    {
        var utf8 = PooledUtf8.Encode("m f=1i 1\n");
        Assert.Equal(9, utf8.Length);
        utf8.Dispose();
        utf8.Dispose();
        Assert.Throws<ObjectDisposedException>(() => utf8.Memory);
    }

    [Fact]
    public void The_pooled_gzip_body_decompresses_to_the_input_whatever_its_size()
    {
        var random = new Random(11);
        foreach (var size in new[] { 0, 1, 255, 256, 70_000, 1_500_000 })
        {
            var input = new byte[size];
            // Half random (incompressible), half repeated, so that the body outgrows its first buffer.
            random.NextBytes(input.AsSpan(0, size / 2));
            input.AsSpan(size / 2).Fill((byte)'x');
            using var body = new PooledBufferStream(size / 4);
            using (var gz = new GZipStream(body, CompressionLevel.Fastest, leaveOpen: true)) gz.Write(input);
            using var back = new MemoryStream();
            using (var gunzip = new GZipStream(new MemoryStream(body.Buffer, 0, (int)body.Length), CompressionMode.Decompress)) gunzip.CopyTo(back);
            Assert.Equal(input, back.ToArray());
        }
    }

    private static int CountChunks(StringBuilder sb)
    {
        var n = 0;
        foreach (var _ in sb.GetChunks()) n++;
        return n;
    }
}
