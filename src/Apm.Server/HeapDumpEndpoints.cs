using Apm.Protocol.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Apm.Influx;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Apm.Server;

/// <summary>Sends a command to the collectors (the commands topic); the host that composes the process provides it.</summary>
public interface ICommandSender
{
    /// <summary>Publishes <paramref name="command"/>; throws when the broker did not take it.</summary>
    Task SendAsync(CollectorCommand command, CancellationToken ct);
}

/// <summary>The answer of POST /api/jvms/{id}/heap-dump; <paramref name="Status"/> is where the command's progress is served.</summary>
public sealed record HeapDumpAccepted(string CommandId, string JvmId, string Host, DateTimeOffset ExpiresAt, string Status);

/// <summary>
/// <c>POST /api/jvms/{id}/heap-dump[?all=true][&amp;trigger=cli]</c>: asks the JVM's collector for a heap dump and its
/// triage. Answers 202 with the command and a Location to <c>GET /api/commands/{id}</c> (its progress, and the refusal
/// with its reason); the report arrives in /api/reports. Behind the API key or a signed-in user like every /api path.
/// Mapped only when an <see cref="ICommandSender"/> is registered.
/// </summary>
public static partial class HeapDumpEndpoints
{
    /// <summary>How long the collector has to start the dump.</summary>
    public static readonly TimeSpan Expiry = TimeSpan.FromMinutes(10);

    /// <summary>The triggers a caller of the API may name (the dashboard and the rules set their own).</summary>
    public static readonly IReadOnlySet<string> ApiTriggers = new HashSet<string>(StringComparer.Ordinal) { "api", "cli" };

    /// <summary>Maps the endpoint when commands can be sent.</summary>
    public static IEndpointRouteBuilder MapApmHeapDumps(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (app.ServiceProvider.GetService<ICommandSender>() is null) return app;
        app.MapPost("/api/jvms/{id}/heap-dump", HandleAsync);
        return app;
    }

    /// <summary>
    /// Checks the JVM is live, records the command as requested (so <c>GET /api/commands/{id}</c> knows it at once) and
    /// sends it; returns the accepted command, or an error (status, text). Shared by the API and the dashboard's
    /// "capture heap dump" form.
    /// </summary>
    public static async Task<(HeapDumpAccepted? Accepted, int Status, string? Error)> RequestAsync(
        string jvmId, bool allObjects, string trigger, string requestedBy, JvmQueries jvms, CommandQueries commands, ICommandSender sender,
        ILogger logger, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(jvms);
        ArgumentNullException.ThrowIfNull(commands);
        ArgumentNullException.ThrowIfNull(sender);
        var jvm = (await jvms.ListJvmsAsync(TimeSpan.FromDays(1), ct, jvmId).ConfigureAwait(false)).FirstOrDefault(j => j.Id == jvmId);
        if (jvm is null) return (null, 404, "no such JVM");
        if (jvm.Status != "live") return (null, 409, $"the JVM is {jvm.Status}: only a live JVM can be dumped");
        var command = CollectorCommand.ForHeapDump(jvm.Id, jvm.Host, Expiry, trigger, requestedBy, allObjects: allObjects);
        try
        {
            await commands.RecordRequestedAsync(command, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InfluxWriteException or HttpRequestException)
        {
            // The dump matters more than its audit point: the collector's results still arrive in apm.command.
            LogNotRecorded(logger, command.CommandId, ex.Message);
        }

        await sender.SendAsync(command, ct).ConfigureAwait(false);
        return (new HeapDumpAccepted(command.CommandId, jvm.Id, jvm.Host, DateTimeOffset.FromUnixTimeMilliseconds(command.ExpiresUnixMs),
            CommandEndpoints.StatusPath(command.CommandId)), 202, null);
    }

    private static async Task<IResult> HandleAsync(string id, HttpContext context, JvmQueries jvms, CommandQueries commands, ICommandSender sender,
        ILoggerFactory loggers, CancellationToken ct)
    {
        var all = string.Equals(context.Request.Query["all"], "true", StringComparison.OrdinalIgnoreCase);
        var trigger = context.Request.Query["trigger"].ToString();
        if (trigger.Length == 0) trigger = "api";
        if (!ApiTriggers.Contains(trigger))
            return Results.Json(new ErrorResponse("trigger: expected api or cli"), ApiJsonContext.Default.ErrorResponse, statusCode: 400);
        var user = context.User.Identity?.Name ?? trigger;
        var (accepted, status, error) = await RequestAsync(id, all, trigger, user, jvms, commands, sender, loggers.CreateLogger(typeof(HeapDumpEndpoints)), ct).ConfigureAwait(false);
        if (accepted is null) return Results.Json(new ErrorResponse(error!), ApiJsonContext.Default.ErrorResponse, statusCode: status);
        context.Response.Headers.Location = accepted.Status;
        return Results.Json(accepted, ApiJsonContext.Default.HeapDumpAccepted, statusCode: 202);
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Heap-dump command {CommandId} sent but not recorded as requested in InfluxDB: {Reason}")]
    private static partial void LogNotRecorded(ILogger logger, string commandId, string reason);
}
