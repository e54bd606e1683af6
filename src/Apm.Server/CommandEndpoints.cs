using System.Globalization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Apm.Server;

/// <summary>
/// Collector commands and their outcome: <c>GET /api/commands/{id}</c> (every step, oldest first; 404 for an unknown
/// id, 400 for a malformed one) and <c>GET /api/commands?jvm=&lt;id&gt;[&amp;limit=20]</c> (recent commands, newest
/// first). See docs/api.md.
/// </summary>
public static class CommandEndpoints
{
    /// <summary>Most commands one list answer holds.</summary>
    public const int MaxLimit = 200;

    /// <summary>Maps the command endpoints.</summary>
    public static IEndpointRouteBuilder MapApmCommands(this IEndpointRouteBuilder app)
    {
        app.MapGet("/api/commands", ListAsync);
        app.MapGet("/api/commands/{id}", GetAsync);
        return app;
    }

    /// <summary>Where a command's status is served.</summary>
    public static string StatusPath(string id) => "/api/commands/" + Uri.EscapeDataString(id);

    private static async Task<IResult> GetAsync(string id, CommandQueries commands, CancellationToken ct)
    {
        if (!CommandQueries.IsValidId(id)) return Error(400, "id: expected a command id (a UUID, as POST /api/jvms/{id}/heap-dump returns it)");
        var status = await commands.GetAsync(id, ct).ConfigureAwait(false);
        return status is null ? Error(404, "no such command (unknown, or older than 30 days)") : Results.Json(status, ApiJsonContext.Default.CommandStatus);
    }

    private static async Task<IResult> ListAsync(CommandQueries commands, HttpRequest request, CancellationToken ct)
    {
        var jvm = request.Query["jvm"].ToString();
        if (jvm.Length > 1000) return Error(400, "jvm: too long");
        var limit = 20;
        if (request.Query["limit"] is { Count: > 0 } text
            && (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit is < 1 or > MaxLimit))
            return Error(400, $"limit: expected 1 to {MaxLimit}");
        var list = await commands.ListAsync(jvm, limit, ct).ConfigureAwait(false);
        return Results.Json(list, ApiJsonContext.Default.IReadOnlyListCommandStatus);
    }

    private static IResult Error(int status, string error) => Results.Json(new ErrorResponse(error), ApiJsonContext.Default.ErrorResponse, statusCode: status);
}
