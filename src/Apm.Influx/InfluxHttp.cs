using System.Buffers;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Apm.Influx;

/// <summary>
/// What the writer and the query client share: URLs, authentication, bounded reads of answers, and the
/// retry loop (exponential backoff with jitter on connection errors, timeouts, 5xx and 429 with Retry-After).
/// </summary>
internal sealed class InfluxHttp : IDisposable
{
    /// <summary>Error answers are short JSON; anything longer is cut so a broken proxy cannot fill memory.</summary>
    private const int MaxErrorBodyBytes = 64 * 1024;

    /// <summary>Retry-After beyond this is treated as this (a misconfigured server must not park a writer for hours).</summary>
    private static readonly TimeSpan MaxRetryAfter = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Where answer buffers come from. Not <see cref="ArrayPool{T}.Shared"/>: that pool keeps a buffer per thread and
    /// drops buffers at full collections, so multi-megabyte answers read on changing thread-pool threads kept
    /// allocating fresh large-object-heap arrays. This pool shares its buffers across threads and keeps up to
    /// four of each size: a few times the largest answer at most, reused for the process's life.
    /// </summary>
    internal static readonly ArrayPool<byte> AnswerPool = ArrayPool<byte>.Create(64 * 1024 * 1024, 4);

    private readonly HttpClient _http;
    private readonly bool _ownsHttp;
    private readonly string _baseUrl;
    private readonly AuthenticationHeaderValue? _auth;
    private readonly ILogger _logger;

    public InfluxHttp(InfluxOptions options, HttpClient? httpClient, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        _logger = logger;
        if (httpClient is null)
        {
            // Per-attempt timeouts come from a CancellationTokenSource, so the client itself never times out.
            _http = new HttpClient(new SocketsHttpHandler
            {
                PooledConnectionLifetime = TimeSpan.FromMinutes(5),
                ConnectTimeout = options.Timeout,
                AutomaticDecompression = DecompressionMethods.GZip,
            }) { Timeout = System.Threading.Timeout.InfiniteTimeSpan };
            _ownsHttp = true;
        }
        else
        {
            _http = httpClient;
        }

        // A user:password in the URL becomes Basic auth too, and is stripped from every URL we build or log.
        var url = options.Url!;
        string? user = options.Username, password = options.Password;
        if (!string.IsNullOrEmpty(url.UserInfo) && user is null)
        {
            var parts = url.UserInfo.Split(':', 2);
            user = Uri.UnescapeDataString(parts[0]);
            password = parts.Length > 1 ? Uri.UnescapeDataString(parts[1]) : "";
        }

        _baseUrl = InfluxOptions.RedactedUrl(url).TrimEnd('/');
        if (options.Token is { Length: > 0 } token)
        {
            _auth = new AuthenticationHeaderValue("Token", token);
        }
        else if (user is not null)
        {
            _auth = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(user + ":" + (password ?? ""))));
        }
    }

    public InfluxOptions Options { get; }

    /// <summary>Base URL without credentials.</summary>
    public string BaseUrl => _baseUrl;

    public Uri BuildUri(string path, params (string Key, string? Value)[] query)
    {
        var sb = new StringBuilder(_baseUrl).Append(path);
        var first = true;
        foreach (var (k, v) in query)
        {
            if (v is null) continue;
            sb.Append(first ? '?' : '&').Append(k).Append('=').Append(Uri.EscapeDataString(v));
            first = false;
        }

        return new Uri(sb.ToString());
    }

    /// <summary>
    /// Sends until the server gives a final answer: a success, or an error that retrying cannot fix (4xx other than 429).
    /// Throws <paramref name="fail"/>'s exception when retries run out. <paramref name="onRetry"/> counts retries.
    /// </summary>
    public async Task<InfluxAnswer> SendAsync(
        Func<HttpRequestMessage> requestFactory,
        string what,
        long maxBodyBytes,
        Action onRetry,
        Func<string, HttpStatusCode?, string?, Exception?, Exception> fail,
        CancellationToken ct,
        int? maxRetries = null)
    {
        var retries = maxRetries ?? Options.MaxRetries;
        for (var attempt = 0; ; attempt++)
        {
            ct.ThrowIfCancellationRequested();
            string reason;
            HttpStatusCode? status = null;
            string? serverError = null;
            Exception? cause = null;
            TimeSpan? retryAfter = null;
            using (var attemptCts = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                attemptCts.CancelAfter(Options.Timeout);
                try
                {
                    using var request = requestFactory();
                    if (_auth is not null) request.Headers.Authorization = _auth;
                    using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, attemptCts.Token).ConfigureAwait(false);
                    var retryable = response.StatusCode == HttpStatusCode.TooManyRequests || (int)response.StatusCode >= 500;
                    if (response.IsSuccessStatusCode || !retryable)
                    {
                        var limit = response.IsSuccessStatusCode ? maxBodyBytes : MaxErrorBodyBytes;
                        var body = await ReadBoundedAsync(response, limit, what, fail, attemptCts.Token).ConfigureAwait(false);
                        return new InfluxAnswer(response.StatusCode, body, response.IsSuccessStatusCode ? null : ErrorText(body.Memory));
                    }

                    status = response.StatusCode;
                    retryAfter = RetryAfter(response);
                    using (var errorBody = await ReadBoundedAsync(response, MaxErrorBodyBytes, what, fail, attemptCts.Token).ConfigureAwait(false))
                    {
                        serverError = ErrorText(errorBody.Memory);
                    }

                    reason = $"HTTP {(int)response.StatusCode}: {serverError}";
                }
                catch (HttpRequestException e)
                {
                    cause = e;
                    reason = "connection failed: " + e.Message;
                }
                catch (IOException e)
                {
                    cause = e;
                    reason = "connection broke: " + e.Message;
                }
                catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
                {
                    cause = e;
                    reason = $"no answer within {Options.Timeout.TotalSeconds:0.###} s";
                }
            }

            if (attempt >= retries)
            {
                throw fail($"{what} to {_baseUrl} failed after {attempt + 1} attempt(s): {reason}", status, serverError, cause);
            }

            onRetry();
            var delay = Backoff(attempt, retryAfter);
            _logger.LogWarning("{What} to {Url} failed ({Reason}); retry {Retry} of {MaxRetries} in {DelayMs} ms",
                what, _baseUrl, reason, attempt + 1, retries, (long)delay.TotalMilliseconds);
            await Task.Delay(delay, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Exponential backoff with jitter (half fixed, half random) so many writers do not retry in step.</summary>
    internal TimeSpan Backoff(int attempt, TimeSpan? retryAfter)
    {
        var cap = Options.RetryMaxDelay.TotalMilliseconds;
        var exp = Math.Min(cap, Options.RetryBaseDelay.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 30)));
        var ms = (exp / 2) + (Random.Shared.NextDouble() * exp / 2);
        var delay = TimeSpan.FromMilliseconds(ms);
        if (retryAfter is { } ra)
        {
            var honoured = ra > MaxRetryAfter ? MaxRetryAfter : ra;
            if (honoured > delay) delay = honoured;
        }

        return delay;
    }

    private static TimeSpan? RetryAfter(HttpResponseMessage response)
    {
        var h = response.Headers.RetryAfter;
        if (h is null) return null;
        if (h.Delta is { } d) return d < TimeSpan.Zero ? TimeSpan.Zero : d;
        if (h.Date is { } date)
        {
            var d2 = date - DateTimeOffset.UtcNow;
            return d2 < TimeSpan.Zero ? TimeSpan.Zero : d2;
        }

        return null;
    }

    /// <summary>
    /// Reads the whole answer into one buffer rented from <see cref="AnswerPool"/> (the caller returns it by disposing the answer).
    /// A fleet-wide query answers several megabytes; a buffer that doubled by fresh allocation left about twice the
    /// answer's size of large-object-heap garbage per query, which the dashboard's poll produced every few seconds.
    /// </summary>
    private static async Task<PooledBody> ReadBoundedAsync(HttpResponseMessage response, long limit, string what,
        Func<string, HttpStatusCode?, string?, Exception?, Exception> fail, CancellationToken ct)
    {
        var declared = response.Content.Headers.ContentLength;
        if (declared is { } d && d > limit && response.IsSuccessStatusCode)
        {
            throw fail($"{what}: the answer has {d} bytes, more than the limit of {limit}", response.StatusCode, null, null);
        }

        var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            // One byte more than the limit can hold, so that an answer over the limit is seen without reading it all.
            var cap = (int)Math.Min(Array.MaxLength, limit + 1);
            var buffer = AnswerPool.Rent((int)Math.Clamp(declared ?? 16 * 1024, 1, cap));
            var length = 0;
            try
            {
                while (true)
                {
                    if (length == Math.Min(buffer.Length, cap))
                    {
                        if (length == cap) break;
                        var bigger = AnswerPool.Rent((int)Math.Min(cap, (long)buffer.Length * 2));
                        buffer.AsSpan(0, length).CopyTo(bigger);
                        AnswerPool.Return(buffer);
                        buffer = bigger;
                    }

                    var n = await stream.ReadAsync(buffer.AsMemory(length, Math.Min(buffer.Length, cap) - length), ct).ConfigureAwait(false);
                    if (n == 0) break;
                    length += n;
                }

                if (length > limit)
                {
                    // Error bodies are only for messages: cut them. A success body over the limit is an error.
                    if (response.IsSuccessStatusCode)
                        throw fail($"{what}: the answer is larger than the limit of {limit} bytes", response.StatusCode, null, null);
                    length = (int)limit;
                }

                var body = new PooledBody(buffer, length);
                buffer = null!;
                return body;
            }
            finally
            {
                if (buffer is not null) AnswerPool.Return(buffer);
            }
        }
    }

    /// <summary>The "error" member of an InfluxDB JSON error answer, or the raw text when it is not that JSON.</summary>
    internal static string ErrorText(ReadOnlyMemory<byte> body)
    {
        if (body.IsEmpty) return "(empty answer)";
        try
        {
            using var doc = JsonDocument.Parse(body);
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String)
                return e.GetString() ?? "";
            if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("message", out var m) && m.ValueKind == JsonValueKind.String)
                return m.GetString() ?? ""; // 2.x answers {"code":..., "message":...}
        }
        catch (JsonException)
        {
        }

        var text = Encoding.UTF8.GetString(body.Span).Trim();
        return text.Length > 2000 ? string.Concat(text.AsSpan(0, 2000), "...") : text;
    }

    public void Dispose()
    {
        if (_ownsHttp) _http.Dispose();
    }
}

/// <summary>
/// A final answer: success, or an error that retrying does not fix. Its body lives in a pooled buffer: dispose the
/// answer once the body is read (an undisposed answer only costs the pool that buffer).
/// </summary>
internal sealed class InfluxAnswer(HttpStatusCode status, PooledBody body, string? error) : IDisposable
{
    private PooledBody _body = body;

    public HttpStatusCode Status { get; } = status;

    public string? Error { get; } = error;

    /// <summary>The answer's bytes; empty once disposed.</summary>
    public ReadOnlyMemory<byte> Body => _body.Memory;

    public bool IsSuccess => (int)Status is >= 200 and < 300;

    public string StatusText => ((int)Status).ToString(CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _body.Dispose();
        _body = default;
    }
}

/// <summary>Bytes in a buffer rented from <see cref="InfluxHttp.AnswerPool"/>; disposing returns it.</summary>
internal readonly struct PooledBody(byte[] buffer, int length) : IDisposable
{
    public ReadOnlyMemory<byte> Memory => buffer is null ? ReadOnlyMemory<byte>.Empty : buffer.AsMemory(0, length);

    public void Dispose()
    {
        if (buffer is not null) InfluxHttp.AnswerPool.Return(buffer);
    }
}
