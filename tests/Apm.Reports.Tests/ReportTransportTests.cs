using System.Text;
using Apm.Protocol.V1;
using Google.Protobuf;

namespace Apm.Reports.Tests;

public sealed class ReportTransportTests
{
    private static ReportContent Report(int htmlBytes, string id = "0123456789abcdef0123456789abcdef")
    {
        var rng = new Random(42);
        // Random bytes do not compress: the payload really spans several chunks.
        var html = new byte[htmlBytes];
        rng.NextBytes(html);
        var meta = new ReportMeta(id, "h:1:1", "h", "com.acme.Main", DateTimeOffset.FromUnixTimeMilliseconds(1_790_000_000_000), "rule:TimerRetainedFinalizable",
            "h:1:1|TimerRetainedFinalizable|x", "cmd", "Timer thread keeps 3000 finalizable X alive", htmlBytes);
        return new ReportContent(meta, Encoding.UTF8.GetBytes("{\"findings\":[]}"), html);
    }

    [Fact]
    public void A_report_split_into_chunks_comes_back_whole_in_any_order()
    {
        var report = Report(300_000);
        var chunks = ReportChunks.Split(report, new JvmIdentity { JvmId = "h:1:1", Host = "h", MainClass = "com.acme.Main" }, chunkBytes: 64 * 1024);
        Assert.True(chunks.Count >= 5, $"{chunks.Count} chunks");
        Assert.All(chunks, c => Assert.True(c.CalculateSize() < 70 * 1024, "a chunk message exceeds its budget"));

        var back = ReportChunks.Join(chunks.Reverse().ToList());

        Assert.Equal(report.Json, back.Json);
        Assert.Equal(report.Html, back.Html);
        Assert.Equal(report.Meta, back.Meta);
    }

    [Fact]
    public void Missing_repeated_foreign_or_altered_chunks_are_refused_with_a_reason()
    {
        var jvm = new JvmIdentity { JvmId = "h:1:1", Host = "h" };
        var chunks = ReportChunks.Split(Report(200_000), jvm, chunkBytes: 64 * 1024).ToList();
        Assert.Contains("chunks", Assert.Throws<InvalidDataException>(() => ReportChunks.Join(chunks.Skip(1).ToList())).Message, StringComparison.Ordinal);
        Assert.Contains("repeated", Assert.Throws<InvalidDataException>(() => ReportChunks.Join([chunks[0], .. chunks.Skip(1).SkipLast(1), chunks[0]])).Message, StringComparison.Ordinal);
        var other = ReportChunks.Split(Report(200_000, "ffffffffffffffffffffffffffffffff"), jvm, chunkBytes: 64 * 1024);
        Assert.Contains("different reports", Assert.Throws<InvalidDataException>(() => ReportChunks.Join([other[0], .. chunks.Skip(1)])).Message, StringComparison.Ordinal);

        var flipped = chunks.Select(c => c.Clone()).ToList();
        var bytes = flipped[1].Payload.ToByteArray();
        bytes[100] ^= 0x40;
        flipped[1].Payload = ByteString.CopyFrom(bytes);
        Assert.Contains("checksum", Assert.Throws<InvalidDataException>(() => ReportChunks.Join(flipped)).Message, StringComparison.Ordinal);

        var hostile = chunks.Select(c => c.Clone()).ToList();
        foreach (var c in hostile) c.ReportId = "../../etc";
        Assert.Contains("not a report id", Assert.Throws<InvalidDataException>(() => ReportChunks.Join(hostile)).Message, StringComparison.Ordinal);

        var huge = chunks.Select(c => c.Clone()).ToList();
        foreach (var c in huge) c.PayloadLength = long.MaxValue;
        Assert.Contains("out of bounds", Assert.Throws<InvalidDataException>(() => ReportChunks.Join(huge)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_compressed_bomb_is_stopped_at_the_expansion_limit()
    {
        // 64 MiB of zeros compress to about 64 KiB; the join refuses to expand beyond its limit (20 x the payload cap).
        var report = new ReportContent(Report(10).Meta, new byte[64 * 1024 * 1024], [1]);
        var chunks = ReportChunks.Split(report, new JvmIdentity { JvmId = "h:1:1" });
        var payload = chunks.Sum(c => c.Payload.Length);
        Assert.Contains("expands beyond", Assert.Throws<InvalidDataException>(() => ReportChunks.Join(chunks, maxPayloadBytes: payload + 1)).Message, StringComparison.Ordinal);
    }
}
