using Apm.Protocol.V1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Apm.Server;

/// <summary>Sends a command to the collectors (the commands topic); the host that composes the process provides it.</summary>
public interface ICommandSender
{
    /// <summary>Publishes <paramref name="command"/>; throws when the broker did not take it.</summary>
    Task SendAsync(CollectorCommand command, CancellationToken ct);
}

/// <summary>The answer of POST /api/jvms/{id}/heap-dump.</summary>
public sealed record HeapDumpAccepted(string CommandId, string JvmId, string Host, DateTimeOffset ExpiresAt);

/// <summary>
/// <c>POST /api/jvms/{id}/heap-dump[?all=true]</c>: asks the JVM's collector for a heap dump and its triage (the
/// report arrives in /api/reports; progress in the <c>apm.command</c> measurement). Behind the API key or a signed-in
/// user like every /api path. Mapped only when an <see cref="ICommandSender"/> is registered.
/// </summary>
public static class HeapDumpEndpoints
{
    /// <summary>How long the collector has to start the dump.</summary>
    public static readonly TimeSpan Expiry = TimeSpan.FromMinutes(10);

    /// <summary>Maps the endpoint when commands can be sent.</summary>
    public static IEndpointRouteBuilder MapApmHeapDumps(this IEndpointRouteBuilder app)
    {
        ArgumentNullException.ThrowIfNull(app);
        if (app.ServiceProvider.GetService<ICommandSender>() is null) return app;
        app.MapPost("/api/jvms/{id}/heap-dump", HandleAsync);
        return app;
    }

    /// <summary>
    /// Checks the JVM is live and sends the command; returns the accepted command, or an error (status, text). Shared
    /// by the API and the dashboard's "capture heap dump" form.
    /// </summary>
    public static async Task<(HeapDumpAccepted? Accepted, int Status, string? Error)> RequestAsync(
        string jvmId, bool allObjects, string trigger, string requestedBy, JvmQueries jvms, ICommandSender sender, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(jvms);
        ArgumentNullException.ThrowIfNull(sender);
        var jvm = (await jvms.ListJvmsAsync(TimeSpan.FromDays(1), ct, jvmId).ConfigureAwait(false)).FirstOrDefault(j => j.Id == jvmId);
        if (jvm is null) return (null, 404, "no such JVM");
        if (jvm.Status != "live") return (null, 409, $"the JVM is {jvm.Status}: only a live JVM can be dumped");
        var command = CollectorCommand.ForHeapDump(jvm.Id, jvm.Host, Expiry, trigger, requestedBy, allObjects: allObjects);
        await sender.SendAsync(command, ct).ConfigureAwait(false);
        return (new HeapDumpAccepted(command.CommandId, jvm.Id, jvm.Host, DateTimeOffset.FromUnixTimeMilliseconds(command.ExpiresUnixMs)), 202, null);
    }

    private static async Task<IResult> HandleAsync(string id, HttpContext context, JvmQueries jvms, ICommandSender sender, CancellationToken ct)
    {
        var all = string.Equals(context.Request.Query["all"], "true", StringComparison.OrdinalIgnoreCase);
        var user = context.User.Identity?.Name ?? "api";
        var (accepted, status, error) = await RequestAsync(id, all, "api", user, jvms, sender, ct).ConfigureAwait(false);
        return accepted is null
            ? Results.Json(new ErrorResponse(error!), ApiJsonContext.Default.ErrorResponse, statusCode: status)
            : Results.Json(accepted, ApiJsonContext.Default.HeapDumpAccepted, statusCode: 202);
    }
}
