using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Apm.Influx;

/// <summary>
/// Writes line protocol to InfluxDB's v1 <c>POST /write</c> (precision=ns, gzip body). A write returns only
/// once the server stored it (HTTP 204); connection errors, timeouts, 5xx and 429 are retried with exponential
/// backoff and jitter (Retry-After honoured). A refused write (4xx, e.g. a partial write or a field type
/// conflict) throws <see cref="InfluxWriteException"/> with the server's message at once.
/// A retried write may be stored twice; that is harmless when points carry their own timestamps, since an
/// identical point (same measurement, tags and time) overwrites itself. Thread-safe.
/// </summary>
public sealed class InfluxWriter : IDisposable
{
    private readonly InfluxHttp _http;
    private readonly Uri _writeUri;
    private long _pointsWritten;
    private long _batches;
    private long _retries;
    private long _failures;
    private long _bytesWritten;
    private long _bytesSent;

    /// <summary>Creates a writer. Pass an <see cref="HttpClient"/> to share connections; otherwise the writer owns one.</summary>
    public InfluxWriter(InfluxOptions options, HttpClient? httpClient = null, ILogger<InfluxWriter>? logger = null)
    {
        _http = new InfluxHttp(options, httpClient, (ILogger?)logger ?? NullLogger.Instance);
        _writeUri = _http.BuildUri("/write", ("db", options.Database), ("rp", options.RetentionPolicy), ("precision", "ns"));
    }

    /// <summary>Points stored (non-empty, non-comment lines of successful requests).</summary>
    public long PointsWritten => Interlocked.Read(ref _pointsWritten);

    /// <summary>HTTP requests that stored their points.</summary>
    public long Batches => Interlocked.Read(ref _batches);

    /// <summary>Attempts repeated after a connection error, timeout, 5xx or 429.</summary>
    public long Retries => Interlocked.Read(ref _retries);

    /// <summary>Requests that finally failed (refused by the server, or out of retries).</summary>
    public long Failures => Interlocked.Read(ref _failures);

    /// <summary>Line protocol bytes stored (before compression).</summary>
    public long BytesWritten => Interlocked.Read(ref _bytesWritten);

    /// <summary>Compressed bytes of successful requests (what crossed the network for them).</summary>
    public long BytesSent => Interlocked.Read(ref _bytesSent);

    /// <summary>Writes the lines (UTF-8 line protocol, '\n' separated, ns timestamps) and returns once stored.</summary>
    public async Task WriteAsync(string lines, CancellationToken cancellationToken = default)
    {
        using var utf8 = PooledUtf8.Encode(lines);
        await WriteAsync(utf8.Memory, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Writes every complete point of <paramref name="builder"/>; the caller clears it afterwards.</summary>
    public async Task WriteAsync(LineProtocolBuilder builder, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(builder);
        using var utf8 = builder.ToUtf8();
        await WriteAsync(utf8.Memory, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Writes UTF-8 line protocol and returns once stored. Inputs with more than <see cref="InfluxOptions.BatchSize"/>
    /// points are sent as several requests, in order; if one fails, the ones before it stay stored.
    /// </summary>
    public async Task WriteAsync(ReadOnlyMemory<byte> lines, CancellationToken cancellationToken = default)
    {
        var batchSize = _http.Options.BatchSize;
        var rest = lines;
        while (!rest.IsEmpty)
        {
            var (chunkLength, points) = TakeLines(rest.Span, batchSize);
            var chunk = rest[..chunkLength];
            rest = rest[chunkLength..];
            if (points > 0) await SendBatchAsync(chunk, points, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Creates the database (CREATE DATABASE is a no-op when it exists). Retried like writes. A user without the right
    /// to create databases passes when the database exists; otherwise the error says what to create.
    /// </summary>
    public async Task EnsureDatabaseAsync(CancellationToken cancellationToken = default)
    {
        var database = InfluxQl.QuoteIdentifier(_http.Options.Database);
        using var answer = await QueryAsync("CREATE DATABASE " + database, cancellationToken).ConfigureAwait(false);
        var statementError = answer.IsSuccess ? InfluxQueryClient.FirstStatementError(answer.Body) : null;
        if (answer.IsSuccess && statementError is null) return;
        if (answer.Status == HttpStatusCode.Unauthorized)
            throw new InfluxWriteException("InfluxDB refused the credentials (HTTP 401): check Apm__Influx__Username/Password or Token.", answer.Status, answer.Error);

        // A user without admin rights (or a 2.x/3.x server, where databases are buckets made elsewhere) may not create
        // databases; that is fine when the database exists. SHOW DATABASES lists those the user has rights on.
        var reason = statementError ?? answer.Error ?? answer.StatusText;
        if (answer.Status != HttpStatusCode.Forbidden && !IsAuthorizationError(reason))
            throw new InfluxWriteException($"CREATE DATABASE refused with HTTP {answer.StatusText}: {reason}", answer.Status, reason);
        using var probe = await QueryAsync("SHOW DATABASES", cancellationToken).ConfigureAwait(false);
        if (!probe.IsSuccess || InfluxQueryClient.FirstStatementError(probe.Body) is not null)
        {
            // Neither created nor listed: whether it exists is for the first write to tell (it fails with the reason).
            return;
        }

        var listed = InfluxQueryClient.Parse(probe.Body).Series
            .Any(series => Enumerable.Range(0, series.Values.Count).Any(row => series.GetString(row, "name") == _http.Options.Database));
        if (!listed)
        {
            throw new InfluxWriteException(
                $"InfluxDB database '{_http.Options.Database}' does not exist or this user has no rights on it, and may not create it ({reason}). " +
                $"As an admin: CREATE DATABASE {database}, then GRANT ALL ON {database} TO the user.",
                answer.Status, reason);
        }
    }

    private static bool IsAuthorizationError(string? message) =>
        message is not null && (message.Contains("not authorized", StringComparison.OrdinalIgnoreCase)
                                || message.Contains("admin privilege", StringComparison.OrdinalIgnoreCase)
                                || message.Contains("unauthorized", StringComparison.OrdinalIgnoreCase));

    private Task<InfluxAnswer> QueryAsync(string statement, CancellationToken cancellationToken)
    {
        var uri = _http.BuildUri("/query");
        return _http.SendAsync(
            () => new HttpRequestMessage(HttpMethod.Post, uri) { Content = new FormUrlEncodedContent([new("q", statement)]) },
            statement, 1024 * 1024, () => Interlocked.Increment(ref _retries),
            static (m, s, e, i) => new InfluxWriteException(m, s, e, i), cancellationToken);
    }

    /// <summary>
    /// One GET /ping without retries: true on a 2xx answer (1.x and 2.x answer 204). Never throws for an unreachable server.
    /// </summary>
    public async Task<bool> PingAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            using var answer = await _http.SendAsync(() => new HttpRequestMessage(HttpMethod.Get, _http.BuildUri("/ping")), "ping", 64 * 1024,
                static () => { }, static (m, s, e, i) => new InfluxWriteException(m, s, e, i), cancellationToken, maxRetries: 0).ConfigureAwait(false);
            return answer.IsSuccess;
        }
        catch (InfluxWriteException)
        {
            return false;
        }
    }

    /// <summary>Disposes the owned HTTP client.</summary>
    public void Dispose() => _http.Dispose();

    /// <summary>
    /// The prefix of <paramref name="data"/> that holds at most <paramref name="maxPoints"/> points (ending after a
    /// '\n' unless it is the whole input), and the number of points in it. Blank and '#' comment lines are not points.
    /// </summary>
    internal static (int Length, int Points) TakeLines(ReadOnlySpan<byte> data, int maxPoints)
    {
        var pos = 0;
        var points = 0;
        while (pos < data.Length)
        {
            var nl = data[pos..].IndexOf((byte)'\n');
            var end = nl < 0 ? data.Length : pos + nl + 1;
            var line = data[pos..end].TrimEnd("\r\n"u8).TrimStart(" \t"u8);
            if (!line.IsEmpty && line[0] != (byte)'#')
            {
                if (points == maxPoints) break;
                points++;
            }

            pos = end;
        }

        return (pos, points);
    }

    private async Task SendBatchAsync(ReadOnlyMemory<byte> chunk, int points, CancellationToken cancellationToken)
    {
        // Compressed once, resent as is on every retry. Line protocol compresses about 10:1.
        // Into a pooled buffer: a batch's body is often over the large-object threshold.
        using var compressed = new PooledBufferStream(chunk.Length / 4);
        using (var gz = new GZipStream(compressed, CompressionLevel.Fastest, leaveOpen: true))
        {
            gz.Write(chunk.Span);
        }

        var body = compressed.Buffer;
        var bodyLength = (int)compressed.Length;
        InfluxAnswer answer;
        try
        {
            answer = await _http.SendAsync(
                () =>
                {
                    var content = new ByteArrayContent(body, 0, bodyLength);
                    content.Headers.ContentType = new MediaTypeHeaderValue("text/plain") { CharSet = "utf-8" };
                    content.Headers.ContentEncoding.Add("gzip");
                    return new HttpRequestMessage(HttpMethod.Post, _writeUri) { Content = content };
                },
                "write", 64 * 1024, () => Interlocked.Increment(ref _retries),
                static (m, s, e, i) => new InfluxWriteException(m, s, e, i), cancellationToken).ConfigureAwait(false);
        }
        catch (InfluxWriteException)
        {
            Interlocked.Increment(ref _failures);
            throw;
        }

        using var final = answer;
        if (!answer.IsSuccess)
        {
            Interlocked.Increment(ref _failures);
            throw new InfluxWriteException(
                $"InfluxDB refused a write of {points} point(s) with HTTP {answer.StatusText}: {answer.Error}", answer.Status, answer.Error);
        }

        Interlocked.Add(ref _pointsWritten, points);
        Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _bytesWritten, chunk.Length);
        Interlocked.Add(ref _bytesSent, bodyLength);
    }
}
