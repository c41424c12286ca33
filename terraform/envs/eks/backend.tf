# Remote state in S3 with S3-native locking (Terraform 1.10+). The bucket, key and region
# come from a backend config file, so nothing account-specific is committed:
#   cp backend.hcl.example backend.hcl   # edit the bucket
#   terraform init -backend-config=backend.hcl
terraform {
  backend "s3" {}
}
