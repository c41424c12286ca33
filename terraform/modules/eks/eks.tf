# --- the cluster -----------------------------------------------------------------------

resource "aws_iam_role" "cluster" {
  name = "${var.name}-eks-cluster"
  tags = local.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "eks.amazonaws.com" }
      Action    = ["sts:AssumeRole", "sts:TagSession"]
    }]
  })
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:${data.aws_partition.this.partition}:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_cloudwatch_log_group" "eks" {
  # EKS writes its control plane logs to this exact name.
  name              = "/aws/eks/${var.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_eks_cluster" "this" {
  name     = var.name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn
  tags     = local.tags

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  vpc_config {
    subnet_ids              = aws_subnet.private[*].id
    endpoint_private_access = true
    endpoint_public_access  = var.endpoint_public_access
    public_access_cidrs     = var.endpoint_public_access ? var.public_access_cidrs : null
  }

  encryption_config {
    resources = ["secrets"]
    provider {
      key_arn = aws_kms_key.this.arn
    }
  }

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_cloudwatch_log_group.eks,
  ]
}

# --- nodes ----------------------------------------------------------------------------

resource "aws_iam_role" "nodes" {
  name = "${var.name}-eks-nodes"
  tags = local.tags

  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "ec2.amazonaws.com" }
      Action    = "sts:AssumeRole"
    }]
  })
}

locals {
  # The managed node group's and Karpenter's nodes (addons.tf) alike.
  node_policies = toset(["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"])
}

resource "aws_iam_role_policy_attachment" "nodes" {
  for_each = local.node_policies

  role       = aws_iam_role.nodes.name
  policy_arn = "arn:${data.aws_partition.this.partition}:iam::aws:policy/${each.value}"
}

# IMDSv2 only, one hop: pods cannot borrow the node's role; they use IRSA.
resource "aws_launch_template" "nodes" {
  name_prefix            = "${var.name}-nodes-"
  update_default_version = true
  tags                   = local.tags

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_size           = 100
      volume_type           = "gp3"
      encrypted             = true
      kms_key_id            = aws_kms_key.this.arn
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = "${var.name}-node" })
  }
}

resource "aws_eks_node_group" "default" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "default"
  node_role_arn   = aws_iam_role.nodes.arn
  subnet_ids      = aws_subnet.private[*].id
  instance_types  = var.node_instance_types
  ami_type        = "AL2023_x86_64_STANDARD"
  capacity_type   = "ON_DEMAND"
  tags            = local.tags

  launch_template {
    id      = aws_launch_template.nodes.id
    version = aws_launch_template.nodes.latest_version
  }

  scaling_config {
    min_size     = var.node_min_size
    max_size     = var.node_max_size
    desired_size = var.node_desired_size
  }

  update_config {
    max_unavailable = 1
  }

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  # Nodes join only once the CNI add-on is in place: otherwise they come up with the
  # self-managed aws-node that EKS installs, without network policy enforcement.
  depends_on = [aws_iam_role_policy_attachment.nodes, aws_eks_addon.vpc_cni]
}

# The VPC CNI enforces the chart's NetworkPolicies once its network policy agent is on.
# OVERWRITE on create: it takes over the aws-node DaemonSet EKS installs with the cluster.
resource "aws_eks_addon" "vpc_cni" {
  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = "vpc-cni"
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
  configuration_values        = jsonencode({ enableNetworkPolicy = "true" })
  tags                        = local.tags
}

# metrics-server feeds the HorizontalPodAutoscalers (the chart's autoscaling).
resource "aws_eks_addon" "core" {
  for_each = toset(["coredns", "kube-proxy", "metrics-server"])

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.value
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "OVERWRITE"
  tags                        = local.tags

  depends_on = [aws_eks_node_group.default]
}

# --- IRSA -----------------------------------------------------------------------------

data "tls_certificate" "oidc" {
  url = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

resource "aws_iam_openid_connect_provider" "this" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = [data.tls_certificate.oidc.certificates[0].sha1_fingerprint]
  tags            = local.tags
}

# The in-cluster identities that assume IAM roles. The chart names each service's
# ServiceAccount from services.<svc>.serviceAccount.name, which the env's helm_values sets
# from this map, so the bindings hold for any release name (docs/adr/0033).
locals {
  oidc_host = replace(aws_iam_openid_connect_provider.this.url, "https://", "")

  service_account_names = { for s in concat(keys(local.workloads), ["external-secrets"]) : s => "${var.release_name}-${s}" }

  # IAM role key -> the namespace/name of the ServiceAccount that may assume it.
  irsa_subjects = merge(
    { for s in keys(local.workloads) : s => "${var.namespace}:${local.service_account_names[s]}" },
    { for c, spec in local.controllers : c => "${spec.namespace}:${spec.service_account}" },
  )
  irsa_trust = { for role, subject in local.irsa_subjects : role => jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = aws_iam_openid_connect_provider.this.arn }
      Action    = "sts:AssumeRoleWithWebIdentity"
      Condition = {
        StringEquals = {
          "${local.oidc_host}:sub" = "system:serviceaccount:${subject}"
          "${local.oidc_host}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  }) }
}

# MSK IAM access control (port 9098, the only way in: ADR 0047) follows modules/kafka-access's
# table (data.tf), as GKE's Managed Kafka ACLs do: a service writes only the topics it owns
# and the DLQs of those it consumes, reads only what it consumes, and joins only its own
# consumer groups.
locals {
  kafka_arn = "arn:${data.aws_partition.this.partition}:kafka:${data.aws_region.this.name}:${data.aws_caller_identity.this.account_id}"
  kafka_iam_actions = {
    "Topic/Write"             = ["kafka-cluster:DescribeTopic", "kafka-cluster:WriteData"]
    "Topic/Read"              = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
    "Topic/Create"            = ["kafka-cluster:CreateTopic"]
    "Group/Read"              = ["kafka-cluster:DescribeGroup", "kafka-cluster:AlterGroup"]
    "Cluster/IdempotentWrite" = ["kafka-cluster:WriteDataIdempotently"]
  }
  kafka_iam_statements = {
    for service in local.kafka_users : service => concat(
      [{
        Sid      = "KafkaCluster"
        Effect   = "Allow"
        Action   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
        Resource = [aws_msk_cluster.this.arn]
      }],
      [for grant, actions in local.kafka_iam_actions : {
        Sid    = "Kafka${replace(grant, "/", "")}"
        Effect = "Allow"
        Action = actions
        Resource = [for b in values(module.kafka_access.bindings) : (
          b.type == "Cluster" ? aws_msk_cluster.this.arn :
          "${local.kafka_arn}:${lower(b.type)}/${aws_msk_cluster.this.cluster_name}/${aws_msk_cluster.this.cluster_uuid}/${b.name}"
        ) if b.service == service && "${b.type}/${b.operation}" == grant]
        } if anytrue([for b in values(module.kafka_access.bindings) : b.service == service && "${b.type}/${b.operation}" == grant])
      ],
    )
  }
}

# Each workload's Kubernetes ServiceAccount assumes its own role.
resource "aws_iam_role" "service" {
  for_each = local.workloads

  name               = "${var.name}-${each.key}"
  tags               = local.tags
  assume_role_policy = local.irsa_trust[each.key]
}

# A workload with Kafka signs in to MSK with this role (its OAUTHBEARER tokens are MSK IAM
# tokens). None reads Secrets Manager:
# the External Secrets Operator, with its own role (addons.tf), syncs their Secrets.
resource "aws_iam_role_policy" "service" {
  for_each = local.kafka_users

  name = "ticketing-${each.key}"
  role = aws_iam_role.service[each.key].id

  policy = jsonencode({
    Version   = "2012-10-17"
    Statement = local.kafka_iam_statements[each.key]
  })
}
