# The release workflow's identity (.github/workflows/release.yml, ADR 0036): GitHub's OIDC
# token for a job of the repository's `release` environment is exchanged through Workload
# Identity Federation for the release service account, which may push to Artifact
# Registry and attest what it pushed (binauthz.tf). No key exists; the environment's
# protection rules are what stand between a tag and these rights.

locals {
  # GitHub's `sub` for a job that names an environment: repo:<owner>/<repo>:environment:<name>.
  github_release_subject = "repo:${var.github_repository}:environment:release"
}

# Pool IDs stay reserved for 30 days after a delete: a re-create needs another name.
resource "google_iam_workload_identity_pool" "github" {
  project                   = var.project_id
  workload_identity_pool_id = "${var.name}-github"
  display_name              = "GitHub Actions"
  description               = "The release workflow of ${var.github_repository}"

  depends_on = [google_project_service.apis]
}

# Only tokens of this repository's release environment are exchanged at all (their `sub`
# names both); the service account binding below names the same subject.
resource "google_iam_workload_identity_pool_provider" "github" {
  #checkov:skip=CKV_GCP_125:the condition is assertion.sub == repo:<github_repository>:environment:release exactly; checkov cannot resolve github_repository, which has no default, and fails on the unresolved name
  project                            = var.project_id
  workload_identity_pool_id          = google_iam_workload_identity_pool.github.workload_identity_pool_id
  workload_identity_pool_provider_id = "github-actions"
  display_name                       = "GitHub Actions OIDC"
  attribute_mapping                  = { "google.subject" = "assertion.sub" }
  attribute_condition                = "assertion.sub == \"${local.github_release_subject}\""

  oidc {
    issuer_uri = "https://token.actions.githubusercontent.com"
  }
}

resource "google_service_account" "release" {
  project      = var.project_id
  account_id   = "${var.name}-release"
  display_name = "ticketing release workflow (GitHub Actions)"
}

resource "google_service_account_iam_member" "release" {
  service_account_id = google_service_account.release.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "principal://iam.googleapis.com/${google_iam_workload_identity_pool.github.name}/subject/${local.github_release_subject}"
}

# Push the promoted indexes and their cosign signatures (tags are immutable: a version
# cannot be moved once pushed).
resource "google_artifact_registry_repository_iam_member" "release" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.this.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.release.member
}
