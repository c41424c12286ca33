# The release workflow's identity (.github/workflows/release.yml, ADR 0036): a job of the
# repository's `release` environment exchanges GitHub's OIDC token for this role, which
# may push to the workloads' ECR repositories and nothing else. No access key exists; the
# environment's protection rules are what stand between a tag and these rights.

locals {
  github_oidc_host = "token.actions.githubusercontent.com"
  # GitHub's `sub` for a job that names an environment: repo:<owner>/<repo>:environment:<name>.
  github_release_subject = "repo:${var.github_repository}:environment:release"
  github_oidc_provider   = coalesce(var.github_oidc_provider_arn, one(aws_iam_openid_connect_provider.github[*].arn))
}

# One provider per URL per account: pass github_oidc_provider_arn where it exists already.
# IAM trusts GitHub's certificate through its own CA library, so no thumbprint is pinned.
resource "aws_iam_openid_connect_provider" "github" {
  count = var.github_oidc_provider_arn == null ? 1 : 0

  url            = "https://${local.github_oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
  tags           = local.tags
}

resource "aws_iam_role" "release" {
  name        = "${var.name}-release"
  description = "The release workflow of ${var.github_repository} (environment release): pushes images to ECR"
  tags        = local.tags
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = local.github_oidc_provider }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.github_oidc_host}:aud" = "sts.amazonaws.com"
          "${local.github_oidc_host}:sub" = local.github_release_subject
        }
      }
    }]
  })
}

# crane copies each index by digest and cosign pushes its signature next to it: both read
# and write manifests and layers of the workloads' repositories (ECR refuses to move a tag).
resource "aws_iam_role_policy" "release" {
  name = "ecr-push"
  role = aws_iam_role.release.id

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "EcrLogin"
        Effect   = "Allow"
        Action   = ["ecr:GetAuthorizationToken"]
        Resource = ["*"]
      },
      {
        Sid    = "EcrPush"
        Effect = "Allow"
        Action = [
          "ecr:BatchCheckLayerAvailability",
          "ecr:BatchGetImage",
          "ecr:CompleteLayerUpload",
          "ecr:GetDownloadUrlForLayer",
          "ecr:InitiateLayerUpload",
          "ecr:PutImage",
          "ecr:UploadLayerPart",
        ]
        Resource = [for name in keys(local.workloads) : aws_ecr_repository.this[name].arn]
      },
    ]
  })
}
