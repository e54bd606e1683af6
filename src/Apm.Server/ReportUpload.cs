using System.Text;
using Apm.Reports;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Apm.Server;

/// <summary>Limits of heap-dump uploads, bound from <c>Apm:Reports</c>.</summary>
public sealed class UploadOptions
{
    /// <summary>Largest accepted upload.</summary>
    public long MaxUploadBytes { get; set; } = 4L << 30;

    /// <summary>Managed-heap limit of the triage child process.</summary>
    public long TriageMemoryLimitBytes { get; set; } = 2L << 30;

    /// <summary>Time allowed for the triage.</summary>
    public TimeSpan TriageTimeout { get; set; } = TimeSpan.FromMinutes(30);

    /// <summary>The program that runs <c>triage</c>; empty = this <c>apm</c>.</summary>
    public string? TriageCommand { get; set; }
}

/// <summary>The answer of an accepted upload.</summary>
public sealed record UploadAccepted(string Id, string TopFinding);

/// <summary>
/// Heap-dump upload: <c>POST /api/reports/upload?name=&lt;file name&gt;</c> with the .hprof as the raw body. The body is
/// streamed to a temp file inside the store (never held in memory), refused beyond the size limit (413), checked for
/// the HPROF header, triaged in a memory-limited child process like the collector's dumps, stored, and deleted. The file
/// name is only shown (sanitized); it never becomes a path.
/// </summary>
public static class ReportUpload
{
    private static readonly byte[] HprofMagic = "JAVA PROFILE 1.0."u8.ToArray();

    /// <summary>Maps the upload endpoint when a report store is registered.</summary>
    public static IEndpointRouteBuilder MapApmReportUpload(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (app.ServiceProvider.GetService<ReportStore>() is null) return app;
        app.MapPost("/api/reports/upload", HandleAsync);
        return app;
    }

    /// <summary>
    /// Streams <paramref name="body"/> to disk, triages and stores it. Returns the report, or an HTTP status and reason.
    /// Shared by the API and the dashboard's upload form.
    /// </summary>
    public static async Task<(UploadAccepted? Accepted, int Status, string? Error)> AcceptAsync(
        Stream body, string? fileName, string uploadedBy, ReportStore store, UploadOptions options, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(body);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        var uploads = Path.Combine(store.Directory, ".uploads");
        Directory.CreateDirectory(uploads);
        var temp = Path.Combine(uploads, Guid.NewGuid().ToString("N") + ".hprof");
        try
        {
            long total = 0;
            var head = new byte[HprofMagic.Length];
            var headLength = 0;
            await using (var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous))
            {
                var buffer = new byte[1 << 16];
                int n;
                while ((n = await body.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    total += n;
                    if (total > options.MaxUploadBytes) return (null, 413, $"the upload is larger than the limit of {options.MaxUploadBytes} bytes (Apm:Reports:MaxUploadBytes)");
                    if (headLength < head.Length)
                    {
                        var take = Math.Min(n, head.Length - headLength);
                        Array.Copy(buffer, 0, head, headLength, take);
                        headLength += take;
                        if (headLength == head.Length && !head.AsSpan().SequenceEqual(HprofMagic)) return (null, 400, "not an HPROF heap dump (the file does not start with \"JAVA PROFILE 1.0.\")");
                    }

                    await file.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                }
            }

            if (headLength < head.Length) return (null, 400, "not an HPROF heap dump (too short)");
            var outcome = await TriageRunner.RunAsync(temp, options.TriageMemoryLimitBytes, options.TriageTimeout, options.TriageCommand, ct).ConfigureAwait(false);
            if (outcome.Json is null || outcome.Html is null)
            {
                return outcome.Failure == "not-hprof"
                    ? (null, 400, "the heap dump cannot be read: " + outcome.Reason)
                    : (null, 422, outcome.Reason);
            }

            var id = ReportStore.NewId();
            var meta = new ReportMeta(id, "upload", "", DisplayName(fileName), DateTimeOffset.UtcNow, "upload:" + uploadedBy, "", "",
                TriageRunner.TopFinding(outcome.Json), total);
            store.Save(meta, outcome.Json, outcome.Html);
            return (new UploadAccepted(id, meta.TopFinding), 201, null);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    /// <summary>A file name for display only: the last path segment, control characters removed, at most 200 characters.</summary>
    public static string DisplayName(string? fileName)
    {
        if (string.IsNullOrWhiteSpace(fileName)) return "uploaded.hprof";
        var last = fileName.Replace('\\', '/');
        last = last[(last.LastIndexOf('/') + 1)..];
        var sb = new StringBuilder(Math.Min(last.Length, 200));
        foreach (var c in last)
        {
            if (sb.Length == 200) break;
            if (!char.IsControl(c)) sb.Append(c);
        }

        return sb.Length == 0 || sb.ToString() is "." or ".." ? "uploaded.hprof" : sb.ToString();
    }

    private static async Task<IResult> HandleAsync(HttpContext context, ReportStore store, IOptions<UploadOptions> options, CancellationToken ct)
    {
        // Kestrel's default request limit (30 MB) is far below a heap dump; this endpoint enforces its own.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit) limit.MaxRequestBodySize = options.Value.MaxUploadBytes + 1;
        if (context.Request.ContentLength > options.Value.MaxUploadBytes)
            return Results.Json(new ErrorResponse($"the upload is larger than the limit of {options.Value.MaxUploadBytes} bytes"), ApiJsonContext.Default.ErrorResponse, statusCode: 413);
        var (accepted, status, error) = await AcceptAsync(context.Request.Body, context.Request.Query["name"], context.User.Identity?.Name ?? "api", store, options.Value, ct).ConfigureAwait(false);
        return accepted is null
            ? Results.Json(new ErrorResponse(error!), ApiJsonContext.Default.ErrorResponse, statusCode: status)
            : Results.Json(accepted, ApiJsonContext.Default.UploadAccepted, statusCode: 201);
    }
}
