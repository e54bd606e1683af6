using System.IO.Compression;
using System.Security.Cryptography;
using Apm.Protocol.V1;
using Google.Protobuf;

namespace Apm.Reports;

/// <summary>A whole report as it travels: metadata plus the JSON and HTML documents.</summary>
public sealed record ReportContent(ReportMeta Meta, byte[] Json, byte[] Html);

/// <summary>Splits a report into <see cref="TriageReportChunk"/> messages and puts it back together.</summary>
public static class ReportChunks
{
    /// <summary>Chunk payload size: 512 KiB keeps a message well below Kafka's default 1 MB limit.</summary>
    public const int DefaultChunkBytes = 512 * 1024;

    /// <summary>Compresses and splits <paramref name="report"/>; every chunk repeats the metadata.</summary>
    public static IReadOnlyList<TriageReportChunk> Split(ReportContent report, JvmIdentity jvm, int chunkBytes = DefaultChunkBytes)
    {
        ArgumentNullException.ThrowIfNull(report);
        ArgumentNullException.ThrowIfNull(jvm);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkBytes, 1024);
        var json = Gzip(report.Json);
        var html = Gzip(report.Html);
        var payload = new byte[json.Length + html.Length];
        json.CopyTo(payload, 0);
        html.CopyTo(payload, json.Length);
        var sha = Convert.ToHexStringLower(SHA256.HashData(payload));
        var count = Math.Max(1, (payload.Length + chunkBytes - 1) / chunkBytes);
        var chunks = new List<TriageReportChunk>(count);
        for (var i = 0; i < count; i++)
        {
            var start = i * chunkBytes;
            var length = Math.Min(chunkBytes, payload.Length - start);
            var m = report.Meta;
            chunks.Add(new TriageReportChunk
            {
                ReportId = m.Id,
                Jvm = jvm,
                CreatedUnixMs = m.CreatedAt.ToUnixTimeMilliseconds(),
                Trigger = m.Trigger,
                AlertId = m.AlertId,
                CommandId = m.CommandId,
                ChunkIndex = i,
                ChunkCount = count,
                Payload = ByteString.CopyFrom(payload, start, length),
                JsonGzipLength = json.Length,
                PayloadLength = payload.Length,
                PayloadSha256 = sha,
                TopFinding = m.TopFinding,
                DumpBytes = m.DumpBytes,
            });
        }

        return chunks;
    }

    /// <summary>Reassembles chunks (any order, all of one report); throws <see cref="InvalidDataException"/> with the reason when they do not form one intact report.</summary>
    public static ReportContent Join(IReadOnlyList<TriageReportChunk> chunks, long maxPayloadBytes = 256L * 1024 * 1024)
    {
        ArgumentNullException.ThrowIfNull(chunks);
        if (chunks.Count == 0) throw new InvalidDataException("no chunks");
        var first = chunks[0];
        if (!ReportStore.IsValidId(first.ReportId)) throw new InvalidDataException($"'{first.ReportId}' is not a report id");
        if (first.ChunkCount != chunks.Count) throw new InvalidDataException($"{chunks.Count} of {first.ChunkCount} chunks");
        if (first.PayloadLength < 0 || first.PayloadLength > maxPayloadBytes) throw new InvalidDataException($"payload of {first.PayloadLength} bytes is out of bounds");
        if (first.JsonGzipLength < 0 || first.JsonGzipLength > first.PayloadLength) throw new InvalidDataException("JSON length is outside the payload");
        var payload = new byte[first.PayloadLength];
        var seen = new bool[first.ChunkCount];
        var offset = 0L;
        foreach (var c in chunks.OrderBy(c => c.ChunkIndex))
        {
            if (c.ReportId != first.ReportId || c.ChunkCount != first.ChunkCount || c.PayloadLength != first.PayloadLength)
                throw new InvalidDataException("chunks of different reports");
            if (c.ChunkIndex < 0 || c.ChunkIndex >= c.ChunkCount || seen[c.ChunkIndex]) throw new InvalidDataException($"bad or repeated chunk index {c.ChunkIndex}");
            seen[c.ChunkIndex] = true;
            if (offset + c.Payload.Length > payload.Length) throw new InvalidDataException("chunks are longer than the payload");
            c.Payload.Span.CopyTo(payload.AsSpan((int)offset));
            offset += c.Payload.Length;
        }

        if (offset != payload.Length) throw new InvalidDataException($"chunks hold {offset} of {payload.Length} bytes");
        if (Convert.ToHexStringLower(SHA256.HashData(payload)) != first.PayloadSha256) throw new InvalidDataException("payload checksum mismatch");
        var json = Gunzip(payload.AsSpan(0, (int)first.JsonGzipLength), maxPayloadBytes * 20);
        var html = Gunzip(payload.AsSpan((int)first.JsonGzipLength), maxPayloadBytes * 20);
        var meta = new ReportMeta(first.ReportId, first.Jvm?.JvmId ?? "", first.Jvm?.Host ?? "", first.Jvm?.MainClass ?? "",
            DateTimeOffset.FromUnixTimeMilliseconds(first.CreatedUnixMs), first.Trigger, first.AlertId, first.CommandId, first.TopFinding, first.DumpBytes);
        return new ReportContent(meta, json, html);
    }

    private static byte[] Gzip(byte[] data)
    {
        using var output = new MemoryStream();
        using (var gz = new GZipStream(output, CompressionLevel.Optimal, leaveOpen: true)) gz.Write(data);
        return output.ToArray();
    }

    /// <summary>Decompresses with a size cap, so a hostile chunk cannot expand without bound.</summary>
    private static byte[] Gunzip(ReadOnlySpan<byte> data, long maxBytes)
    {
        using var input = new MemoryStream(data.ToArray());
        using var gz = new GZipStream(input, CompressionMode.Decompress);
        using var output = new MemoryStream();
        var buffer = new byte[81920];
        int n;
        while ((n = gz.Read(buffer)) > 0)
        {
            if (output.Length + n > maxBytes) throw new InvalidDataException($"report expands beyond {maxBytes} bytes");
            output.Write(buffer, 0, n);
        }

        return output.ToArray();
    }
}
